"""Dispatch of bidirectional gated linear attention (BiGLA) to its backends (docs/bigla.md).

The op is `torch.ops.visiongates.bigla` (torch.library custom op with a fake implementation, so torch.compile and
torch.export trace it as one node) with autograd through `torch.ops.visiongates.bigla_backward`; a backend without
its own backward is differentiated by torch.func.vjp through its forward. The op returns [o, *residuals]: when
autograd records it, a backend that declares residual buffers (the "triton" backend: its chunk states) fills them in
the forward, and its backward reads them instead of recomputing. During ONNX export
(`torch.onnx.is_in_onnx_export()`) and torch.export (`torch.compiler.is_exporting()`) `bigla` instead calls
`chunk.bigla_traceable`: one path (chunks with per-pair decay weights) with no data-dependent branch, so the graph
holds only ordinary ops and serves any token count and any gate. Without autograd, compile or a dispatch mode
(inference) `bigla` calls the backend directly.

`backend="auto"` resolves to "triton" for CUDA tensors when that backend is registered and triton imports, else to
"chunk". The C++ "cuda" backend is never chosen by "auto": it runs only when asked for by name (it has not been
verified on a GPU; `tools/gpu_check.sh` is the check that must pass first).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode
from torch.utils.flop_counter import register_flop_formula

from .chunk import bigla_traceable
from .registry import _BACKENDS, Backend, available_backends, register_backend

__all__ = ["AUTO_ORDER", "Backend", "available_backends", "bigla", "register_backend", "resolve"]


@torch.library.custom_op("visiongates::bigla", mutates_args=())
def _bigla_op(
    q: Tensor, k: Tensor, v: Tensor, g_fwd: Tensor, g_bwd: Tensor, scale: float, backend: str, save_residuals: bool
) -> list[Tensor]:
    """[o, *residuals]: with save_residuals (a backward will follow), the backend's residual buffers, filled."""
    impl = _BACKENDS[backend]
    if save_residuals and impl.residuals is not None:
        residuals = impl.residuals(q, k, v, g_fwd, g_bwd)
        return [impl.forward(q, k, v, g_fwd, g_bwd, scale, residuals=residuals).contiguous(), *residuals]
    return [impl.forward(q, k, v, g_fwd, g_bwd, scale).contiguous()]  # contiguous: the fake's layout


@_bigla_op.register_fake
def _bigla_fake(q, k, v, g_fwd, g_bwd, scale, backend, save_residuals):
    impl = _BACKENDS[backend]
    residuals = impl.residuals(q, k, v, g_fwd, g_bwd) if save_residuals and impl.residuals is not None else []
    return [v.new_empty(v.shape), *residuals]


@torch.library.custom_op("visiongates::bigla_backward", mutates_args=())
def _bigla_backward_op(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g_fwd: Tensor,
    g_bwd: Tensor,
    residuals: list[Tensor],
    scale: float,
    backend: str,
) -> list[Tensor]:
    impl = _BACKENDS[backend]
    if impl.backward is not None:
        extra = {"residuals": residuals} if impl.residuals is not None else {}
        grads = impl.backward(grad_out, q, k, v, g_fwd, g_bwd, scale, **extra)
    else:
        _, pullback = torch.func.vjp(lambda *x: impl.forward(*x, scale), q, k, v, g_fwd, g_bwd)
        grads = pullback(grad_out.to(v.dtype))
    return [g.contiguous() for g in grads]


@_bigla_backward_op.register_fake
def _bigla_backward_fake(grad_out, q, k, v, g_fwd, g_bwd, residuals, scale, backend):
    return [t.new_empty(t.shape) for t in (q, k, v, g_fwd, g_bwd)]


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, g_fwd, g_bwd, scale, backend, _ = inputs
    ctx.save_for_backward(q, k, v, g_fwd, g_bwd, *output[1:])
    ctx.scale, ctx.backend = scale, backend


def _backward(ctx, grads: list[Tensor | None]):
    q, k, v, g_fwd, g_bwd, *residuals = ctx.saved_tensors
    grad_out = grads[0] if grads[0] is not None else torch.zeros_like(v)
    dq_dk_dv_dgs = torch.ops.visiongates.bigla_backward(grad_out, q, k, v, g_fwd, g_bwd, residuals, ctx.scale,
                                                        ctx.backend)  # fmt: skip
    return (*dq_dk_dv_dgs, None, None, None)


_bigla_op.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.visiongates.bigla)
def _bigla_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """Recurrent-form count, as ViG's own figures: per token, head and direction one K x V state update and one
    K x V read, i.e. 2 K V multiply-accumulates; 4 flops per MAC pair over both directions."""
    batch, heads, length, dim_k = q_shape
    return 2 * 2 * 2 * batch * heads * length * dim_k * v_shape[-1]


@register_flop_formula(torch.ops.visiongates.bigla_backward)
def _bigla_backward_flops(grad_shape, q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """Backward counted as twice the forward (the usual matmul convention)."""
    return 2 * _bigla_flops(q_shape, k_shape, v_shape)


def _exporting() -> bool:
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


AUTO_ORDER = {"cuda": ("triton", "chunk"), "cpu": ("chunk",)}  # what "auto" tries per device type, in order


def resolve(backend: str, device: torch.device) -> str:
    """The registered backend that `backend` names for tensors on `device` ("auto": see the module docstring)."""
    if backend == "auto":
        for name in AUTO_ORDER.get(device.type, ("chunk",)):
            impl = _BACKENDS.get(name)
            if impl is not None and device.type in impl.device_types and impl.is_available():
                return name
        return "chunk"
    impl = _BACKENDS.get(backend)
    if impl is None:
        raise ValueError(f"unknown BiGLA backend {backend!r}; registered: {sorted(_BACKENDS)} (or 'auto')")
    if device.type not in impl.device_types:
        raise ValueError(f"BiGLA backend {backend!r} does not run on {device.type} tensors")
    return backend


def _check_shapes(q: Tensor, k: Tensor, v: Tensor, g_fwd: Tensor, g_bwd: Tensor):
    if q.dim() != 4 or not (q.shape == k.shape == g_fwd.shape == g_bwd.shape) or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(
            "BiGLA shape mismatch: q, k, g_fwd, g_bwd must be [B, H, T, K] and v [B, H, T, V]; got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, g_fwd {tuple(g_fwd.shape)}, "
            f"g_bwd {tuple(g_bwd.shape)}"
        )


def bigla(
    q: Tensor, k: Tensor, v: Tensor, g_fwd: Tensor, g_bwd: Tensor, scale: float | None = None, backend: str = "auto"
) -> Tensor:
    """Bidirectional gated linear attention, o_t = scale / 2 * (forward scan + backward scan) (ViG, eq. 4-6).

    Forward scan  S_t = diag(exp(g_fwd_t)) S_{t-1} + k_t^T v_t  (t = 0..T-1),  of_t = q_t S_t
    Backward scan R_t = diag(exp(g_bwd_t)) R_{t+1} + k_t^T v_t  (t = T-1..0),  ob_t = q_t R_t

    Args:
        q, k: [B, H, T, K] queries and keys, shared by both scans (any strides).
        v: [B, H, T, V] values.
        g_fwd, g_bwd: [B, H, T, K] log-decays of the two scans, <= 0 and finite (ViG: logsigmoid(z) / 16).
        scale: multiplies q; default K ** -0.5.
        backend: "auto" (see the module docstring), "chunk", "naive", "triton" or "cuda".

    Returns:
        [B, H, T, V] in v's dtype. fp16 / bf16 / fp32 inputs compute with fp32 states and cumulative gates, fp64
        inputs in fp64 (chunk, naive). Differentiable in q, k, v, g_fwd and g_bwd.

    Example:
        >>> q, k = torch.randn(2, 3, 196, 32), torch.randn(2, 3, 196, 32)
        >>> v = torch.randn(2, 3, 196, 64)
        >>> g_fwd, g_bwd = (F.logsigmoid(torch.randn(2, 3, 196, 32)) / 16 for _ in range(2))
        >>> bigla(q, k, v, g_fwd, g_bwd).shape
        torch.Size([2, 3, 196, 64])
    """
    _check_shapes(q, k, v, g_fwd, g_bwd)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if _exporting():
        return bigla_traceable(q, k, v, g_fwd, g_bwd, scale)
    name = resolve(backend, q.device)
    if _plain_inference(q, k, v, g_fwd, g_bwd):
        # the custom op's dispatch and its output copy cost about 0.07 ms per call on one CPU thread, 15% of the op
        # at ViG-T's 196 tokens; with nothing to record or trace, call the backend itself
        return _BACKENDS[name].forward(q, k, v, g_fwd, g_bwd, scale)
    # a backward follows only where autograd records: only then does the backend keep residuals for it
    save = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, g_fwd, g_bwd))
    return torch.ops.visiongates.bigla(q, k, v, g_fwd, g_bwd, scale, name, save)[0]


def _plain_inference(*tensors: Tensor) -> bool:
    """Nothing needs the op as one node: no autograd record, no torch.compile trace, and no dispatch mode (e.g.
    FlopCounterMode, which counts the op by its own formula)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return not torch.compiler.is_compiling() and not is_in_torch_dispatch_mode()
