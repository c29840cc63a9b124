// Device building blocks of the BiGLA kernels: dtype I/O, chunk loads, gate tables and the small block products.
//
// Every chunk tile lives in shared memory as fp32 with rows padded by 4 floats ([16][W + 4]); that keeps float4
// accesses aligned and spreads rows of 32-multiple widths over the banks. The products are plain SIMT with fp32
// accumulators; each one names the equation it evaluates. launch() starts either kernel.
#pragma once

#include <c10/cuda/CUDAException.h>

#include <cstdint>
#include <cstring>

#include "bigla.h"

namespace bigla {

__device__ __forceinline__ float lane(const float4& a, int i) {  // i is a compile-time constant after unrolling
  return i == 0 ? a.x : (i == 1 ? a.y : (i == 2 ? a.z : a.w));
}

__device__ __forceinline__ void fma4(float4& acc, float s, const float4& b) {
  acc.x = fmaf(s, b.x, acc.x);
  acc.y = fmaf(s, b.y, acc.y);
  acc.z = fmaf(s, b.z, acc.z);
  acc.w = fmaf(s, b.w, acc.w);
}

__device__ __forceinline__ float dot4(const float4& a, const float4& b, float acc) {
  return fmaf(a.w, b.w, fmaf(a.z, b.z, fmaf(a.y, b.y, fmaf(a.x, b.x, acc))));
}

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, const float4& x) { *reinterpret_cast<float4*>(p) = x; }

// ---- dtype I/O: 16-byte vectors in, fp32 out; rounding to nearest even on the way back ----------------------------
template <typename T>
struct Io;

template <>
struct Io<float> {
  static constexpr int kVec = 4;
  __device__ static void unpack(const uint4& raw, float* out) {
    out[0] = __uint_as_float(raw.x);
    out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z);
    out[3] = __uint_as_float(raw.w);
  }
  __device__ static void store(float* p, float x) { *p = x; }
  __device__ static void store4(float* p, const float4& x) { st4(p, x); }
};

struct Bf16Traits {
  using T = __nv_bfloat16;
  using T2 = __nv_bfloat162;
  __device__ static T2 pack(float a, float b) { return __floats2bfloat162_rn(a, b); }
  __device__ static float2 unpack(T2 x) { return __bfloat1622float2(x); }
  __device__ static T from_float(float x) { return __float2bfloat16_rn(x); }
};

struct F16Traits {
  using T = __half;
  using T2 = __half2;
  __device__ static T2 pack(float a, float b) { return __floats2half2_rn(a, b); }
  __device__ static float2 unpack(T2 x) { return __half22float2(x); }
  __device__ static T from_float(float x) { return __float2half_rn(x); }
};

template <typename Tr>
struct Io16 {
  using T = typename Tr::T;
  using T2 = typename Tr::T2;
  static constexpr int kVec = 8;
  __device__ static void unpack(const uint4& raw, float* out) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      T2 pair;
      memcpy(&pair, &words[i], sizeof(pair));
      const float2 f = Tr::unpack(pair);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
  __device__ static void store(T* p, float x) { *p = Tr::from_float(x); }
  __device__ static void store4(T* p, const float4& x) {
    const T2 lo = Tr::pack(x.x, x.y), hi = Tr::pack(x.z, x.w);
    uint2 raw;
    memcpy(&raw.x, &lo, sizeof(lo));
    memcpy(&raw.y, &hi, sizeof(hi));
    *reinterpret_cast<uint2*>(p) = raw;
  }
};

template <>
struct Io<__nv_bfloat16> : Io16<Bf16Traits> {};

template <>
struct Io<__half> : Io16<F16Traits> {};

// ---- chunk loads: global [T, W] rows t0.. (reversed for the right-to-left sweep) -> fp32 smem [16][W + 4] ---------
// fetch() issues the 16-byte loads into registers (the next chunk, while this one computes); commit() converts and
// stores them. Rows past the sequence end load as zeros: zero q, k, v, dO and log-decays change no state.
template <typename T, int W, int NT, bool REVERSE>
struct TileLoader {
  static constexpr int kVec = Io<T>::kVec;
  static_assert(W % kVec == 0, "row width must hold whole 16-byte vectors");
  static constexpr int kPerRow = W / kVec;
  static constexpr int kTotal = kChunk * kPerRow;
  static constexpr int kPerThread = (kTotal + NT - 1) / NT;
  uint4 regs[kPerThread];

  __device__ __forceinline__ void fetch(const T* __restrict__ base, int chunk, int seqlen) {
#pragma unroll
    for (int m = 0; m < kPerThread; ++m) {
      const int s = threadIdx.x + m * NT;
      regs[m] = make_uint4(0u, 0u, 0u, 0u);
      if (s < kTotal) {
        const int i = s / kPerRow;
        const int t = chunk * kChunk + (REVERSE ? kChunk - 1 - i : i);
        const T* src = base + static_cast<size_t>(t) * W + (s % kPerRow) * kVec;
        if (t < seqlen) regs[m] = *reinterpret_cast<const uint4*>(src);
      }
    }
  }

  __device__ __forceinline__ void commit(float* tile, float mul) const {
#pragma unroll
    for (int m = 0; m < kPerThread; ++m) {
      const int s = threadIdx.x + m * NT;
      if (s < kTotal) {
        float f[kVec];
        Io<T>::unpack(regs[m], f);
        float* dst = tile + (s / kPerRow) * stride(W) + (s % kPerRow) * kVec;
#pragma unroll
        for (int e = 0; e < kVec; e += 4) {
          st4(dst + e, make_float4(f[e] * mul, f[e + 1] * mul, f[e + 2] * mul, f[e + 3] * mul));
        }
      }
    }
  }
};

// Global row of sweep-local row i of a chunk (rows run backwards in the right-to-left sweep).
template <bool REVERSE>
__device__ __forceinline__ int token(int chunk, int i) {
  return chunk * kChunk + (REVERSE ? kChunk - 1 - i : i);
}

// ---- gate tables (one thread per channel): chunk-local cumulative log-decays, in place -----------------------------
// prefix: G_i = sum_{s <= i} g_s (the scan running with the sweep), total A = G_15.
// suffix: G_i = sum_{s >= i} g_s (the scan running against it),    total A = G_0.
template <int K, bool SUFFIX>
__device__ __forceinline__ void cumulate_gates(float* g, float* total) {
  const int c = threadIdx.x;
  if (c < K) {
    float s = 0.f;
#pragma unroll
    for (int n = 0; n < kChunk; ++n) {
      const int i = SUFFIX ? kChunk - 1 - n : n;
      s += g[i * stride(K) + c];
      g[i * stride(K) + c] = s;
    }
    total[c] = s;
  }
}

// ---- R1: rows of a chunk times [V]-wide operands ------------------------------------------------------------------
// acc_i = sum_{j < 16} A1[i][j] B1[j][:] + sum_{c < K2} A2[i][c] B2[c][:]     (A1 [16][20], B1 [16][V+4],
// A2 [16][K2+4], B2 [K2][V+4]). Thread: 4 consecutive columns d0.., rows rg + m * kRowGroups.
template <int NT, int V>
struct RowLayout {
  static constexpr int kColGroups = V / 4;
  static_assert(NT % kColGroups == 0, "threads must cover whole rows");
  static constexpr int kRowGroups = NT / kColGroups;
  static_assert(kRowGroups <= kChunk && kChunk % kRowGroups == 0, "bad row layout");
  static constexpr int kRows = kChunk / kRowGroups;
  __device__ static int col() { return 4 * (threadIdx.x % kColGroups); }
  __device__ static int row(int m) { return threadIdx.x / kColGroups + m * kRowGroups; }
};

template <int NT, int K2, int V>
__device__ __forceinline__ void chunk_rows_product(float4 (&acc)[RowLayout<NT, V>::kRows], const float* A1,
                                                   const float* B1, const float* A2, const float* B2) {
  using L = RowLayout<NT, V>;
  const int d0 = L::col();
#pragma unroll
  for (int m = 0; m < L::kRows; ++m) acc[m] = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int j = 0; j < kChunk; j += 4) {
    float4 a[L::kRows];
#pragma unroll
    for (int m = 0; m < L::kRows; ++m) a[m] = ld4(A1 + L::row(m) * kPairStride + j);
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const float4 b = ld4(B1 + (j + jj) * stride(V) + d0);
#pragma unroll
      for (int m = 0; m < L::kRows; ++m) fma4(acc[m], lane(a[m], jj), b);
    }
  }
#pragma unroll 2
  for (int c = 0; c < K2; c += 4) {
    float4 a[L::kRows];
#pragma unroll
    for (int m = 0; m < L::kRows; ++m) a[m] = ld4(A2 + L::row(m) * stride(K2) + c);
#pragma unroll
    for (int cc = 0; cc < 4; ++cc) {
      const float4 b = ld4(B2 + (c + cc) * stride(V) + d0);
#pragma unroll
      for (int m = 0; m < L::kRows; ++m) fma4(acc[m], lane(a[m], cc), b);
    }
  }
}

// ---- R2: state update St = diag(decay) St + A^T B  (St [K][V+4], A [16][K+4], B [16][V+4]) ------------------------
// Thread: 4 consecutive columns d0.. of kRows consecutive state rows; it alone reads and writes them.
template <int NT, int K, int V>
struct StateLayout {
  static constexpr int kColGroups = V / 4;
  static_assert(NT % kColGroups == 0, "threads must cover whole state rows");
  static constexpr int kRowGroups = NT / kColGroups;
  static_assert(K % kRowGroups == 0, "bad state layout");
  static constexpr int kRows = K / kRowGroups;
  __device__ static int col() { return 4 * (threadIdx.x % kColGroups); }
  __device__ static int row(int m) { return (threadIdx.x / kColGroups) * kRows + m; }
};

template <int NT, int K, int V>
__device__ __forceinline__ void state_update(float* St, const float* decay, const float* A, const float* B) {
  using L = StateLayout<NT, K, V>;
  const int d0 = L::col();
  float4 acc[L::kRows];
#pragma unroll
  for (int m = 0; m < L::kRows; ++m) acc[m] = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4
  for (int j = 0; j < kChunk; ++j) {
    const float4 b = ld4(B + j * stride(V) + d0);
#pragma unroll
    for (int m = 0; m < L::kRows; ++m) fma4(acc[m], A[j * stride(K) + L::row(m)], b);
  }
#pragma unroll
  for (int m = 0; m < L::kRows; ++m) {
    float* s = St + L::row(m) * stride(V) + d0;
    const float dm = decay[L::row(m)];
    float4 x = ld4(s);
    x.x = fmaf(dm, x.x, acc[m].x);
    x.y = fmaf(dm, x.y, acc[m].y);
    x.z = fmaf(dm, x.z, acc[m].z);
    x.w = fmaf(dm, x.w, acc[m].w);
    st4(s, x);
  }
}

// ---- R3: 16 x 16 pair block, out[x][y] at out[x * ox + y * oy] ----------------------------------------------------
// MASK 0: every pair; 1: y <= x; 2: y >= x (zero elsewhere). Value sum_c A[x][c] B[y][c] (factorised weights
// already in A, B), or, EXACT, sum_c A[x][c] B[y][c] exp(G[x][c] - G[y][c]) with the exponent clamped at 0 (it is
// <= 0 inside the mask; the clamp keeps the discarded pairs finite).
enum PairMask { kAll = 0, kLower = 1, kUpper = 2 };

template <int NT, int L, int MASK, bool EXACT>
__device__ __forceinline__ void pair_block(float* out, int ox, int oy, const float* A, const float* B,
                                           const float* G) {
  static_assert(L % 4 == 0, "reduction length must be a multiple of 4");
  for (int e = threadIdx.x; e < kChunk * kChunk; e += NT) {
    const int x = e / kChunk, y = e % kChunk;
    const float* a = A + x * stride(L);
    const float* b = B + y * stride(L);
    float acc = 0.f;
#pragma unroll 4
    for (int c = 0; c < L; c += 4) {
      float4 av = ld4(a + c);
      const float4 bv = ld4(b + c);
      if constexpr (EXACT) {
        const float4 gx = ld4(G + x * stride(L) + c), gy = ld4(G + y * stride(L) + c);
        av.x *= expf(fminf(gx.x - gy.x, 0.f));
        av.y *= expf(fminf(gx.y - gy.y, 0.f));
        av.z *= expf(fminf(gx.z - gy.z, 0.f));
        av.w *= expf(fminf(gx.w - gy.w, 0.f));
      }
      acc = dot4(av, bv, acc);
    }
    const bool keep = MASK == kAll || (MASK == kLower ? y <= x : y >= x);
    out[x * ox + y * oy] = keep ? acc : 0.f;
  }
}

// ---- R4: gradient rows, one channel per thread --------------------------------------------------------------------
// out[x][c] = sum_{y < x} W(x, y) B1[y][c] w_xy,c + f2[x][c] sum_d A2[x][d] B2[c][d]
// with the pair weight w_xy,c = f1[x][c] * z_c (B1 pre-multiplied by the other factor), or, EXACT,
// exp(sign * (G[x][c] - G[y][c])) (<= 0 for y < x in the caller's orientation). W(x, y) = W[x][y] or W[y][x].
template <int NT, int K>
struct GradLayout {
  static_assert(NT % K == 0, "threads must cover whole channels");
  static constexpr int kRowGroups = NT / K;
  static_assert(kRowGroups <= kChunk && kChunk % kRowGroups == 0, "bad gradient layout");
  static constexpr int kRows = kChunk / kRowGroups;
  __device__ static int chan() { return threadIdx.x % K; }
  __device__ static int row(int m) { return threadIdx.x / K + m * kRowGroups; }
};

template <int NT, int K, int V, bool EXACT, bool TRANSPOSE_W>
__device__ __forceinline__ void grad_rows(float (&out)[GradLayout<NT, K>::kRows], const float* W, const float* B1,
                                          const float* G, float sign, const float* f1, float z, const float* A2,
                                          const float* B2, const float* f2) {
  using L = GradLayout<NT, K>;
  const int c = L::chan();
  float t1[L::kRows], t2[L::kRows];
#pragma unroll
  for (int m = 0; m < L::kRows; ++m) t1[m] = t2[m] = 0.f;
#pragma unroll 4
  for (int y = 0; y < kChunk; ++y) {
    const float b = B1[y * stride(K) + c];
#pragma unroll
    for (int m = 0; m < L::kRows; ++m) {
      const int x = L::row(m);
      const float w = TRANSPOSE_W ? W[y * kPairStride + x] : W[x * kPairStride + y];
      float term = w * b;
      if constexpr (EXACT) term *= expf(fminf(sign * (G[x * stride(K) + c] - G[y * stride(K) + c]), 0.f));
      t1[m] += y < x ? term : 0.f;
    }
  }
  const float* b2 = B2 + c * stride(V);
#pragma unroll 2
  for (int d = 0; d < V; d += 4) {
    const float4 b = ld4(b2 + d);
#pragma unroll
    for (int m = 0; m < L::kRows; ++m) t2[m] = dot4(ld4(A2 + L::row(m) * stride(V) + d), b, t2[m]);
  }
#pragma unroll
  for (int m = 0; m < L::kRows; ++m) {
    const int x = L::row(m);
    const float w1 = EXACT ? 1.f : f1[x * stride(K) + c] * z;
    out[m] = fmaf(w1, t1[m], f2[x * stride(K) + c] * t2[m]);
  }
}

// ---- compensated running sum (the gate gradients are long cumulative sums) ----------------------------------------
struct KahanSum {
  float sum = 0.f, comp = 0.f;
  __device__ __forceinline__ void add(float x) {
    const float y = x - comp;
    const float t = sum + y;
    comp = (t - sum) - y;
    sum = t;
  }
  __device__ __forceinline__ float value() const { return sum - comp; }
};

// ---- launch: one block per (batch, head), C::kBytes of dynamic shared memory (opted in above 48 KiB) ----------------
template <typename C>
void launch(void (*kernel)(const Params), const Params& p, cudaStream_t stream) {
  if (C::kBytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(C::kBytes)));
  }
  kernel<<<p.batch_heads, C::kThreads, C::kBytes, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace bigla
