// BiGLA backward kernel: dq, dk, dv and both gate gradients in one launch (one thread block per (batch, head)).
//
// With e = scale / 2 * dO and dP_ij = e_i . v_j, each sweep handles the scan that runs with it ("nat": its state N,
// needed by dq) and the one that runs against it ("anti": its gradient state D, needed by dk and dv):
//   sweep A (right to left): nat = backward scan (R), anti = forward scan  -> dq_b, dk_f, dv_f to fp32 partials
//   sweep B (left to right): nat = forward scan (S),  anti = backward scan -> dq_f, dk_b, dv_b, added to them
// Per chunk (Gn: inclusive prefix of the nat log-decays, An = Gn_15; Ga: inclusive suffix of the anti ones,
// Aa = Ga_0; pair weights factorised as in the forward when the chunk totals allow, else exact):
//   dq_i  = sum_{j<i} dP_ij k_j exp(Gn_i - Gn_j) + exp(Gn_i) (N e_i^T) + dP_ii k_i
//   dk_j  = sum_{i<j} dP_ij q_i exp(Ga_i - Ga_j) + exp(Aa - Ga_j) (D v_j^T) + dP_jj q_j
//   dv_j  = sum_{i<=j} Pa_ij e_i + (k_j exp(Aa - Ga_j)) D,     Pa_ij = sum_c q_ic k_jc exp(Ga_ic - Ga_jc)
//   N <- diag(exp(An)) N + (k exp(An - Gn))^T v,   D <- diag(exp(Aa)) D + (q exp(Ga))^T e
// Gate gradients (docs/bigla.md): d log a_t = sum over t' at or after t in the scan's own order of (q dq - k dk)_{t'},
// each direction with its own dq, dk (the i = j terms cancel and are left out). Sweep A keeps running sums of
// x_q = q dq_nat (exclusive) and x_k = k dk_anti (inclusive); sweep B finishes each direction with the other half
// and the identity sum_t q dq = sum_t k dk of one direction (every pair term appears once in each).
#pragma once

#include "bigla_common.cuh"

namespace bigla {

// FINAL (sweep B): out = ws + val in T; else ws = val (fp32 partial; ws may alias out for fp32).
template <typename T, bool FINAL>
__device__ __forceinline__ void emit(T* out, float* ws, size_t i, float val) {
  if constexpr (FINAL) {
    Io<T>::store(out + i, ws[i] + val);
  } else {
    ws[i] = val;
  }
}

template <typename T, bool FINAL>
__device__ __forceinline__ void emit4(T* out, float* ws, size_t i, const float4& val) {
  if constexpr (FINAL) {
    const float4 w = ld4(ws + i);
    Io<T>::store4(out + i, make_float4(w.x + val.x, w.y + val.y, w.z + val.z, w.w + val.w));
  } else {
    st4(ws + i, val);
  }
}

// tot_q, tot_k (thread c < K): sweep A leaves sum_t q dq_b and sum_t k dk_f there; sweep B reads them.
template <typename T, typename TG, int K, int V, bool REVERSE>
__device__ __forceinline__ void bwd_sweep(const Params& p, float* smem, float& tot_q, float& tot_k) {
  using C = BwdConfig<K, V>;
  constexpr int NT = C::kThreads;
  constexpr bool FINAL = !REVERSE;
  using Rows = RowLayout<NT, V>;
  using Grad = GradLayout<NT, K>;
  const int seqlen = p.seqlen;
  const size_t bh = blockIdx.x, off_k = bh * seqlen * K, off_v = bh * seqlen * V;
  const T* q = static_cast<const T*>(p.q) + off_k;
  const T* k = static_cast<const T*>(p.k) + off_k;
  const T* v = static_cast<const T*>(p.v) + off_v;
  const T* dout = static_cast<const T*>(p.grad_out) + off_v;
  const TG* g_nat = static_cast<const TG*>(REVERSE ? p.g_bwd : p.g_fwd) + off_k;
  const TG* g_anti = static_cast<const TG*>(REVERSE ? p.g_fwd : p.g_bwd) + off_k;
  T* dq = static_cast<T*>(p.dq) + off_k;
  T* dk = static_cast<T*>(p.dk) + off_k;
  T* dv = static_cast<T*>(p.dv) + off_v;
  TG* dg_nat = static_cast<TG*>(REVERSE ? p.dg_bwd : p.dg_fwd) + off_k;
  TG* dg_anti = static_cast<TG*>(REVERSE ? p.dg_fwd : p.dg_bwd) + off_k;
  float* ws_dq = p.ws_dq + off_k;
  float* ws_dk = p.ws_dk + off_k;
  float* ws_dv = p.ws_dv + off_v;
  float* ws_nat = (REVERSE ? p.ws_dg_bwd : p.ws_dg_fwd) + off_k;
  float* ws_anti = (REVERSE ? p.ws_dg_fwd : p.ws_dg_bwd) + off_k;

  float *sq = smem + C::kQ, *sk = smem + C::kK, *sgn = smem + C::kGn, *sga = smem + C::kGa;
  float *segn = smem + C::kEGn, *seaga = smem + C::kEAGa, *skn = smem + C::kKn, *sqa = smem + C::kQa;
  float *ska = smem + C::kKa, *skaz = smem + C::kKaz, *sxq = smem + C::kXq, *sxk = smem + C::kXk;
  float *sv = smem + C::kV, *se = smem + C::kE, *sdp = smem + C::kDP, *spat = smem + C::kPaT;
  float *sn = smem + C::kN, *sd = smem + C::kD, *san = smem + C::kAn, *saa = smem + C::kAa;
  float *sdecay_n = smem + C::kDecayN, *sdecay_a = smem + C::kDecayA, *szn = smem + C::kZn, *sza = smem + C::kZa;

  for (int e = threadIdx.x; e < K * stride(V); e += NT) sn[e] = sd[e] = 0.f;
  KahanSum run_q, run_k;  // thread c < K: running sums of x_q and x_k in sweep order

  const int n_chunks = (seqlen + kChunk - 1) / kChunk;
  auto chunk_at = [&](int n) { return REVERSE ? n_chunks - 1 - n : n; };
  TileLoader<T, K, NT, REVERSE> load_q, load_k;
  TileLoader<TG, K, NT, REVERSE> load_gn, load_ga;
  TileLoader<T, V, NT, REVERSE> load_v, load_e;
  auto fetch = [&](int chunk) {
    load_q.fetch(q, chunk, seqlen);
    load_k.fetch(k, chunk, seqlen);
    load_gn.fetch(g_nat, chunk, seqlen);
    load_ga.fetch(g_anti, chunk, seqlen);
    load_v.fetch(v, chunk, seqlen);
    load_e.fetch(dout, chunk, seqlen);
  };
  fetch(chunk_at(0));

  for (int n = 0; n < n_chunks; ++n) {
    const int chunk = chunk_at(n);
    __syncthreads();  // the previous chunk is done with the tiles
    load_q.commit(sq, 1.f);
    load_k.commit(sk, 1.f);
    load_gn.commit(sgn, 1.f);
    load_ga.commit(sga, 1.f);
    load_v.commit(sv, 1.f);
    load_e.commit(se, 0.5f * p.scale);
    __syncthreads();
    if (n + 1 < n_chunks) fetch(chunk_at(n + 1));

    // gate tables
    cumulate_gates<K, false>(sgn, san);
    cumulate_gates<K, true>(sga, saa);
    if (threadIdx.x < K) {
      const int c = threadIdx.x;
      sdecay_n[c] = expf(san[c]);
      sdecay_a[c] = expf(saa[c]);
      szn[c] = expf(-fmaxf(san[c], -kFactorLimit));
      sza[c] = expf(-fmaxf(saa[c], -kFactorLimit));
    }
    const bool safe_n = __syncthreads_and(threadIdx.x >= K || san[threadIdx.x] >= -kFactorLimit);
    const bool safe_a = __syncthreads_and(threadIdx.x >= K || saa[threadIdx.x] >= -kFactorLimit);
    for (int e = threadIdx.x; e < kChunk * K; e += NT) {
      const int c = e % K, o = (e / K) * stride(K) + c;
      const float gn = sgn[o], ga = sga[o];
      segn[o] = expf(gn);
      skn[o] = sk[o] * expf(san[c] - gn);
      sqa[o] = sq[o] * expf(ga);
      const float eaga = expf(saa[c] - ga);
      seaga[o] = eaga;
      ska[o] = sk[o] * eaga;
      skaz[o] = sk[o] * eaga * sza[c];
    }
    __syncthreads();

    // dP = e v^T (all pairs); Pa (upper triangle with the diagonal), stored transposed
    pair_block<NT, V, kAll, false>(sdp, kPairStride, 1, se, sv, nullptr);
    if (safe_a) {
      pair_block<NT, K, kUpper, false>(spat, 1, kPairStride, sqa, skaz, nullptr);
    } else {
      pair_block<NT, K, kUpper, true>(spat, 1, kPairStride, sq, sk, sga);
    }
    __syncthreads();

    const int c = Grad::chan();
    {  // dq of the nat scan
      float g[Grad::kRows];
      if (safe_n) {
        grad_rows<NT, K, V, false, false>(g, sdp, skn, nullptr, 1.f, segn, szn[c], se, sn, segn);
      } else {
        grad_rows<NT, K, V, true, false>(g, sdp, sk, sgn, 1.f, nullptr, 0.f, se, sn, segn);
      }
#pragma unroll
      for (int m = 0; m < Grad::kRows; ++m) {
        const int x = Grad::row(m), o = x * stride(K) + c;
        sxq[o] = sq[o] * g[m];
        const int t = token<REVERSE>(chunk, x);
        const float value = fmaf(sdp[x * kPairStride + x], sk[o], g[m]);  // + the i = j term dP_ii k_i
        if (t < seqlen) emit<T, FINAL>(dq, ws_dq, static_cast<size_t>(t) * K + c, value);
      }
    }
    {  // dk of the anti scan (pairs i < j: x = j, y = i, W = dP^T)
      float g[Grad::kRows];
      if (safe_a) {
        grad_rows<NT, K, V, false, true>(g, sdp, sqa, nullptr, -1.f, seaga, sza[c], sv, sd, seaga);
      } else {
        grad_rows<NT, K, V, true, true>(g, sdp, sq, sga, -1.f, nullptr, 0.f, sv, sd, seaga);
      }
#pragma unroll
      for (int m = 0; m < Grad::kRows; ++m) {
        const int x = Grad::row(m), o = x * stride(K) + c;
        sxk[o] = sk[o] * g[m];
        const int t = token<REVERSE>(chunk, x);
        const float value = fmaf(sdp[x * kPairStride + x], sq[o], g[m]);  // + the i = j term dP_jj q_j
        if (t < seqlen) emit<T, FINAL>(dk, ws_dk, static_cast<size_t>(t) * K + c, value);
      }
    }
    {  // dv of the anti scan: Pa^T e + (k exp(Aa - Ga)) D
      float4 g[Rows::kRows];
      chunk_rows_product<NT, K, V>(g, spat, se, ska, sd);
      const int d0 = Rows::col();
#pragma unroll
      for (int m = 0; m < Rows::kRows; ++m) {
        const int t = token<REVERSE>(chunk, Rows::row(m));
        if (t < seqlen) emit4<T, FINAL>(dv, ws_dv, static_cast<size_t>(t) * V + d0, g[m]);
      }
    }
    __syncthreads();  // states read, x_q and x_k written

    state_update<NT, K, V>(sn, sdecay_n, skn, sv);  // N <- diag(exp(An)) N + (k exp(An - Gn))^T v
    state_update<NT, K, V>(sd, sdecay_a, sqa, se);  // D <- diag(exp(Aa)) D + (q exp(Ga))^T e

    // gate gradients, in sweep order: nat from the exclusive sum of x_q, anti from the inclusive sum of x_k.
    // Sweep A stores the negated sums; sweep B adds them to what sweep A stored and to sweep A's totals.
    if (threadIdx.x < K) {
      const int ch = threadIdx.x;
      float base_nat[kChunk], base_anti[kChunk];  // all loads first: one memory latency, not sixteen
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const int t = token<REVERSE>(chunk, i);
        const size_t o = static_cast<size_t>(t) * K + ch;
        base_nat[i] = FINAL && t < seqlen ? ws_nat[o] + tot_k : 0.f;
        base_anti[i] = FINAL && t < seqlen ? ws_anti[o] + tot_q : 0.f;
      }
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const int t = token<REVERSE>(chunk, i);
        const size_t o = static_cast<size_t>(t) * K + ch;
        const float nat = base_nat[i] - run_q.value();
        run_q.add(sxq[i * stride(K) + ch]);
        run_k.add(sxk[i * stride(K) + ch]);
        const float anti = base_anti[i] - run_k.value();
        if (t < seqlen) {
          if constexpr (FINAL) {
            Io<TG>::store(dg_nat + o, nat);
            Io<TG>::store(dg_anti + o, anti);
          } else {
            ws_nat[o] = nat;
            ws_anti[o] = anti;
          }
        }
      }
    }
  }
  if constexpr (REVERSE) {
    tot_q = run_q.value();
    tot_k = run_k.value();
  }
}

template <typename T, typename TG, int K, int V>
__global__ void __launch_bounds__(BwdConfig<K, V>::kThreads) bwd_kernel(const Params p) {
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  float tot_q = 0.f, tot_k = 0.f;
  bwd_sweep<T, TG, K, V, true>(p, smem, tot_q, tot_k);
  __syncthreads();  // sweep B reads the partials other threads wrote, and reuses the shared memory
  bwd_sweep<T, TG, K, V, false>(p, smem, tot_q, tot_k);
}

template <typename T, typename TG, int K, int V>
void bwd_launch(const Params& p, cudaStream_t stream) {
  launch<BwdConfig<K, V>>(bwd_kernel<T, TG, K, V>, p, stream);
}

}  // namespace bigla
