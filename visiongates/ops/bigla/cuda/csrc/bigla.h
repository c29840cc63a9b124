// Fused bidirectional gated linear attention (BiGLA) kernels: shared declarations (host and device).
//
// Layout: q, k, g_fwd, g_bwd [BH, T, K]; v, out, grad_out [BH, T, V]; contiguous. q, k, v, out, grad_out share one
// dtype T (fp32, bf16, fp16); the log-decays g_fwd, g_bwd (and their gradients) have dtype TG, T or fp32.
// Forward scan  S_t = diag(exp(g_fwd_t)) S_{t-1} + k_t^T v_t,
// backward scan R_t = diag(exp(g_bwd_t)) R_{t+1} + k_t^T v_t,   o_t = scale / 2 * q_t (S_t + R_t).
// One thread block per (batch, head) sweeps the sequence right to left, then left to right, in chunks of kChunk
// tokens, with fp32 states, fp32 cumulative gates and fp32 accumulation (visiongates/ops/bigla/cuda/emulate.py
// is the same algorithm in PyTorch).
#pragma once

#include <cstddef>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#ifdef __CUDACC__
#define BIGLA_HOST_DEVICE __host__ __device__
#else
#define BIGLA_HOST_DEVICE
#endif

namespace bigla {

constexpr int kChunk = 16;             // tokens per chunk (one 16 x 16 intra-chunk pair block)
constexpr float kFactorLimit = 60.0f;  // exp(G_i - G_j) = exp(G_i) exp(A - G_j) exp(-A) when every channel has A >= -60

BIGLA_HOST_DEVICE constexpr int stride(int width) { return width + 4; }  // padded row length (floats) of a smem tile
constexpr int kPairStride = stride(kChunk);                // [16][20] pair-score tiles

// Threads and shared-memory layout (in floats; every offset a multiple of 4, so float4-aligned) of each kernel.
template <int K, int V>
struct FwdConfig {
  static constexpr int kThreads = K * V >= 4096 ? 256 : 128;
  static constexpr int kTileK = kChunk * stride(K);
  static constexpr int kTileV = kChunk * stride(V);
  static constexpr int kQ = 0;                    // q
  static constexpr int kK = kQ + kTileK;          // k
  static constexpr int kG = kK + kTileK;          // log-decays, then G
  static constexpr int kQt = kG + kTileK;         // q exp(G)
  static constexpr int kKn = kQt + kTileK;        // k exp(A - G)
  static constexpr int kKnz = kKn + kTileK;       // k exp(-G) = k exp(A - G) exp(-A)   (factorised path)
  static constexpr int kV = kKnz + kTileK;        // v
  static constexpr int kP = kV + kTileV;          // pair scores [16][20]
  static constexpr int kN = kP + kChunk * kPairStride;  // state [K][V + 4]
  static constexpr int kA = kN + K * stride(V);   // chunk totals A
  static constexpr int kDecay = kA + K;           // exp(A)
  static constexpr int kZ = kDecay + K;           // exp(-max(A, -limit))
  static constexpr int kFloats = kZ + K;
  static constexpr size_t kBytes = kFloats * sizeof(float);
};

template <int K, int V>
struct BwdConfig {
  static constexpr int kThreads = K * V >= 4096 ? 256 : 128;
  static constexpr int kTileK = kChunk * stride(K);
  static constexpr int kTileV = kChunk * stride(V);
  static constexpr int kPair = kChunk * kPairStride;
  static constexpr int kQ = 0;                   // q
  static constexpr int kK = kQ + kTileK;         // k
  static constexpr int kGn = kK + kTileK;        // nat log-decays, then Gn (prefix)
  static constexpr int kGa = kGn + kTileK;       // anti log-decays, then Ga (suffix)
  static constexpr int kEGn = kGa + kTileK;      // exp(Gn)
  static constexpr int kEAGa = kEGn + kTileK;    // exp(Aa - Ga)
  static constexpr int kKn = kEAGa + kTileK;     // k exp(An - Gn)
  static constexpr int kQa = kKn + kTileK;       // q exp(Ga)
  static constexpr int kKa = kQa + kTileK;       // k exp(Aa - Ga)
  static constexpr int kKaz = kKa + kTileK;      // k exp(-Ga) = k exp(Aa - Ga) exp(-Aa)
  static constexpr int kXq = kKaz + kTileK;      // q dq_nat (no i = j terms)
  static constexpr int kXk = kXq + kTileK;       // k dk_anti (no i = j terms)
  static constexpr int kV = kXk + kTileK;        // v
  static constexpr int kE = kV + kTileV;         // e = scale / 2 * dO
  static constexpr int kDP = kE + kTileV;        // dP [16][20]
  static constexpr int kPaT = kDP + kPair;       // Pa transposed [16][20]
  static constexpr int kN = kPaT + kPair;        // nat state [K][V + 4]
  static constexpr int kD = kN + K * stride(V);  // anti gradient state [K][V + 4]
  static constexpr int kAn = kD + K * stride(V);
  static constexpr int kAa = kAn + K;
  static constexpr int kDecayN = kAa + K;
  static constexpr int kDecayA = kDecayN + K;
  static constexpr int kZn = kDecayA + K;
  static constexpr int kZa = kZn + K;
  static constexpr int kFloats = kZa + K;
  static constexpr size_t kBytes = kFloats * sizeof(float);
};

struct Params {
  // inputs (all [BH, T, *], contiguous; the gates in TG, the rest in T)
  const void* q;
  const void* k;
  const void* v;
  const void* g_fwd;
  const void* g_bwd;
  const void* grad_out;  // backward only
  // forward: out [BH, T, V]; scratch fp32 [BH, T, V] holds the right-to-left sweep (may alias out for fp32)
  void* out;
  float* scratch;
  // backward: gradients in the input dtype, and fp32 partials of the first sweep (may alias them for fp32)
  void* dq;
  void* dk;
  void* dv;
  void* dg_fwd;
  void* dg_bwd;
  float* ws_dq;
  float* ws_dk;
  float* ws_dv;
  float* ws_dg_fwd;
  float* ws_dg_bwd;
  int batch_heads;
  int seqlen;
  float scale;
};

// Head dims with compiled kernels. BIGLA_HEAD_DIM_SUBSET keeps ViG's two (compile-test builds).
#ifdef BIGLA_HEAD_DIM_SUBSET
#define BIGLA_FOR_EACH_HEAD_DIM(X) X(16, 32) X(32, 64)
#else
#define BIGLA_FOR_EACH_HEAD_DIM(X) \
  X(16, 32) X(16, 64) X(16, 128) X(32, 32) X(32, 64) X(32, 128) X(64, 32) X(64, 64) X(64, 128)
#endif

template <typename T, typename TG, int K, int V>
void fwd_launch(const Params& params, cudaStream_t stream);

template <typename T, typename TG, int K, int V>
void bwd_launch(const Params& params, cudaStream_t stream);

// Explicit instantiation of LAUNCH (fwd_launch or bwd_launch) for q, k, v in T and log-decays in TG at head dims
// (K, V); _16 instantiates a 16-bit T with log-decays in T and in fp32. Each .cu file holds one pass for one dtype,
// so that the build compiles them in parallel.
#define BIGLA_INSTANTIATE_LAUNCH(LAUNCH, T, TG, K, V) template void LAUNCH<T, TG, K, V>(const Params&, cudaStream_t);
#define BIGLA_INSTANTIATE_LAUNCH_16(LAUNCH, T, K, V) \
  BIGLA_INSTANTIATE_LAUNCH(LAUNCH, T, T, K, V) BIGLA_INSTANTIATE_LAUNCH(LAUNCH, T, float, K, V)

}  // namespace bigla
