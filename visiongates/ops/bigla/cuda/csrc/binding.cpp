// Python bindings of the BiGLA CUDA kernels: argument checks, output and workspace allocation, dtype and head-dim
// dispatch. The autograd wiring and the fallbacks live in visiongates/ops/bigla/cuda/__init__.py.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <cstdint>
#include <tuple>
#include <vector>

#include "bigla.h"

namespace {

using Launcher = void (*)(const bigla::Params&, cudaStream_t);

template <typename T, typename TG>
Launcher pick(int64_t K, int64_t V, bool backward) {
#define BIGLA_CASE(KK, VV) \
  if (K == KK && V == VV) return backward ? &bigla::bwd_launch<T, TG, KK, VV> : &bigla::fwd_launch<T, TG, KK, VV>;
  BIGLA_FOR_EACH_HEAD_DIM(BIGLA_CASE)
#undef BIGLA_CASE
  return nullptr;
}

// dtype: q, k, v (and grad_out); gate_dtype: g_fwd, g_bwd, either dtype or float32.
void launch(at::ScalarType dtype, at::ScalarType gate_dtype, int64_t K, int64_t V, bool backward,
            const bigla::Params& params) {
  const bool fp32_gates = gate_dtype == at::kFloat;
  TORCH_CHECK(fp32_gates || gate_dtype == dtype, "bigla cuda: log-decays must be float32 or q's dtype ", dtype,
              ", not ", gate_dtype);
  Launcher fn = nullptr;
  switch (dtype) {
    case at::kFloat:
      fn = pick<float, float>(K, V, backward);
      break;
    case at::kBFloat16:
      fn = fp32_gates ? pick<__nv_bfloat16, float>(K, V, backward) : pick<__nv_bfloat16, __nv_bfloat16>(K, V, backward);
      break;
    case at::kHalf:
      fn = fp32_gates ? pick<__half, float>(K, V, backward) : pick<__half, __half>(K, V, backward);
      break;
    default:
      TORCH_CHECK(false, "bigla cuda: dtype ", dtype, " is not supported (float32, bfloat16, float16)");
  }
  TORCH_CHECK(fn != nullptr, "bigla cuda: no kernel compiled for head dims K=", K, ", V=", V);
  fn(params, c10::cuda::getCurrentCUDAStream());
}

void check_input(const at::Tensor& t, const char* name, const at::Tensor& ref) {
  TORCH_CHECK(t.is_cuda(), "bigla cuda: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.device() == ref.device(), "bigla cuda: ", name, " is on another device than ", ref.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "bigla cuda: ", name, " has dtype ", t.scalar_type(),
              ", expected ", ref.scalar_type());
  TORCH_CHECK(t.dim() == 4, "bigla cuda: ", name, " must be [B, H, T, D]");
  TORCH_CHECK(t.is_contiguous(), "bigla cuda: ", name, " must be contiguous");
  TORCH_CHECK(reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0, "bigla cuda: ", name,
              " must be 16-byte aligned");
}

// q, k, g_fwd, g_bwd [B, H, T, K]; v [B, H, T, V]. Returns (B * H, T, K, V).
std::tuple<int64_t, int64_t, int64_t, int64_t> check_inputs(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& g_fwd,
                                                             const at::Tensor& g_bwd) {
  check_input(q, "q", q);
  check_input(k, "k", q);
  check_input(v, "v", q);
  TORCH_CHECK(g_fwd.device() == q.device(), "bigla cuda: g_fwd is on another device than q");
  check_input(g_fwd, "g_fwd", g_fwd);
  check_input(g_bwd, "g_bwd", g_fwd);
  TORCH_CHECK(k.sizes() == q.sizes() && g_fwd.sizes() == q.sizes() && g_bwd.sizes() == q.sizes(),
              "bigla cuda: q, k, g_fwd, g_bwd must have one shape");
  TORCH_CHECK(v.size(0) == q.size(0) && v.size(1) == q.size(1) && v.size(2) == q.size(2),
              "bigla cuda: v must be [B, H, T, V] with q's B, H, T");
  TORCH_CHECK(q.size(2) < (int64_t(1) << 31) && q.size(0) * q.size(1) < (int64_t(1) << 31),
              "bigla cuda: sequence or batch too long");
  return {q.size(0) * q.size(1), q.size(2), q.size(3), v.size(3)};
}

bigla::Params make_params(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g_fwd,
                          const at::Tensor& g_bwd, int64_t bh, int64_t seqlen, double scale) {
  bigla::Params p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.g_fwd = g_fwd.data_ptr();
  p.g_bwd = g_bwd.data_ptr();
  p.batch_heads = static_cast<int>(bh);
  p.seqlen = static_cast<int>(seqlen);
  p.scale = static_cast<float>(scale);
  return p;
}

// fp32 partial buffer of the first sweep: the output itself for fp32, else a new fp32 tensor.
at::Tensor partial_for(const at::Tensor& out) {
  return out.scalar_type() == at::kFloat ? out : at::empty(out.sizes(), out.options().dtype(at::kFloat));
}

at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g_fwd,
                   const at::Tensor& g_bwd, double scale) {
  const auto [bh, seqlen, K, V] = check_inputs(q, k, v, g_fwd, g_bwd);
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out = at::empty_like(v);
  if (out.numel() == 0) return out;
  at::Tensor scratch = partial_for(out);
  bigla::Params p = make_params(q, k, v, g_fwd, g_bwd, bh, seqlen, scale);
  p.out = out.data_ptr();
  p.scratch = scratch.data_ptr<float>();
  launch(q.scalar_type(), g_fwd.scalar_type(), K, V, false, p);
  return out;
}

std::vector<at::Tensor> backward(const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, const at::Tensor& g_fwd, const at::Tensor& g_bwd,
                                 double scale) {
  const auto [bh, seqlen, K, V] = check_inputs(q, k, v, g_fwd, g_bwd);
  check_input(grad_out, "grad_out", q);
  TORCH_CHECK(grad_out.sizes() == v.sizes(), "bigla cuda: grad_out must have v's shape");
  const c10::cuda::CUDAGuard guard(q.device());
  std::vector<at::Tensor> grads = {at::empty_like(q), at::empty_like(k), at::empty_like(v), at::empty_like(g_fwd),
                                   at::empty_like(g_bwd)};
  if (v.numel() == 0 || q.numel() == 0) {
    for (auto& g : grads) g.zero_();
    return grads;
  }
  std::vector<at::Tensor> partials;
  for (const auto& g : grads) partials.push_back(partial_for(g));
  bigla::Params p = make_params(q, k, v, g_fwd, g_bwd, bh, seqlen, scale);
  p.grad_out = grad_out.data_ptr();
  p.dq = grads[0].data_ptr();
  p.dk = grads[1].data_ptr();
  p.dv = grads[2].data_ptr();
  p.dg_fwd = grads[3].data_ptr();
  p.dg_bwd = grads[4].data_ptr();
  p.ws_dq = partials[0].data_ptr<float>();
  p.ws_dk = partials[1].data_ptr<float>();
  p.ws_dv = partials[2].data_ptr<float>();
  p.ws_dg_fwd = partials[3].data_ptr<float>();
  p.ws_dg_bwd = partials[4].data_ptr<float>();
  launch(q.scalar_type(), g_fwd.scalar_type(), K, V, true, p);
  return grads;
}

// (K, V) -> (threads, forward smem bytes, backward smem bytes) for every compiled head dim.
std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> head_dims() {
  std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> dims;
#define BIGLA_ROW(KK, VV)                                                                       \
  dims.emplace_back(KK, VV, bigla::FwdConfig<KK, VV>::kThreads, bigla::FwdConfig<KK, VV>::kBytes, \
                    bigla::BwdConfig<KK, VV>::kBytes);
  BIGLA_FOR_EACH_HEAD_DIM(BIGLA_ROW)
#undef BIGLA_ROW
  return dims;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused bidirectional gated linear attention (BiGLA) CUDA kernels";
  m.def("forward", &forward, "o = scale / 2 * (forward scan + backward scan)", py::arg("q"), py::arg("k"),
        py::arg("v"), py::arg("g_fwd"), py::arg("g_bwd"), py::arg("scale"));
  m.def("backward", &backward, "(dq, dk, dv, dg_fwd, dg_bwd)", py::arg("grad_out"), py::arg("q"), py::arg("k"),
        py::arg("v"), py::arg("g_fwd"), py::arg("g_bwd"), py::arg("scale"));
  m.def("head_dims", &head_dims, "[(K, V, threads, forward smem bytes, backward smem bytes)] compiled");
}
