"""Naive bidirectional gated linear attention: the recurrence itself, the test oracle (ViG, docs/bigla.md).

Forward scan  S_t = diag(exp(gf_t)) S_{t-1} + k_t^T v_t,  of_t = s q_t S_t  (t = 0..T-1)
Backward scan R_t = diag(exp(gb_t)) R_{t+1} + k_t^T v_t,  ob_t = s q_t R_t  (t = T-1..0)
Output        o_t = (of_t + ob_t) / 2

A Python loop over T: O(T K V) work, slow, and simple enough to trust. Differentiable by autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .registry import register_backend


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """fp64 if any input is fp64, else fp32 (states and gates are never kept in half precision)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def gla_scan_naive(q: Tensor, k: Tensor, v: Tensor, g: Tensor) -> Tensor:
    """One forward-direction GLA scan, o_t = q_t S_t with S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t (no scale).

    q, k, g: [..., T, K]; v: [..., T, V]; returns [..., T, V] in the inputs' dtype.
    """
    state = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    outputs = []
    # unbind once: per-step indexing would make autograd scatter T full-size gradients (quadratic in T)
    for q_t, k_t, v_t, decay_t in zip(q.unbind(-2), k.unbind(-2), v.unbind(-2), g.exp().unbind(-2)):
        state = decay_t[..., :, None] * state + k_t[..., :, None] * v_t[..., None, :]
        outputs.append((q_t[..., None, :] @ state).squeeze(-2))
    return torch.stack(outputs, dim=-2)


def bigla_naive(q: Tensor, k: Tensor, v: Tensor, g_fwd: Tensor, g_bwd: Tensor, scale: float | None = None) -> Tensor:
    """Bidirectional GLA by the recurrence (oracle). Layouts as `visiongates.ops.bigla.bigla`; output in v's dtype."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    out_dtype, dtype = v.dtype, compute_dtype(q, k, v, g_fwd, g_bwd)
    q, k, v, g_fwd, g_bwd = (t.to(dtype) for t in (q, k, v, g_fwd, g_bwd))
    q = q * scale
    # the backward scan is the forward scan of the time-reversed inputs; both run as one batch
    both = (torch.stack((t, t.flip(-2))) for t in (q, k, v))
    out_fwd, out_bwd = gla_scan_naive(*both, torch.stack((g_fwd, g_bwd.flip(-2))))
    return ((out_fwd + out_bwd.flip(-2)) * 0.5).to(out_dtype)


register_backend("naive", bigla_naive)
