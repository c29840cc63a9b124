"""Bidirectional gated linear attention for short sequences: each direction as one masked T x T product.

The parallel (attention-like) form of a GLA scan (Yang et al., "Gated Linear Attention Transformers with
Hardware-Efficient Training", 2023, eq. 3; ViG, Liao et al. 2024, uses one per direction; see docs/bigla.md):

    of_i = sum_{j <= i} (q_i * exp(G_i - G_j)) . k_j  v_j    (G: prefix sums of g_fwd)
    ob_i = sum_{j >= i} (q_i * exp(H_i - H_j)) . k_j  v_j    (H: suffix sums of g_bwd)

computed as (q e^(G - r)) (k e^(r - G))^T, masked to j <= i (j >= i), both directions summed into one T x T score
matrix, times v: three matmuls and no loop, O(T^2 (K + V)) work. It is the chunked path's intra-chunk product
(chunk.py) with one chunk spanning the whole sequence, unpadded, so it wins where T is short (ViG-T at 224 px:
T = 196) and loses to the chunks' O(T C) beyond a few hundred tokens.

Overflow: the reference r is half of each channel's total log-decay (G runs from one token's log-decay to that
total, all <= 0), so every factor's exponent is at most half the total in magnitude. When that total exceeds
`limit` for some channel (never for a trained ViG at these lengths: its log-decays are logsigmoid(z)/16, a few
hundredths per token), `bigla_quadratic` returns None and the caller takes the chunked path, which is exact for
any gate.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


def _factors(q: Tensor, k: Tensor, shifted: Tensor) -> tuple[Tensor, Tensor]:
    """q e^(G - r), k e^(r - G) for shifted = G - r."""
    return q * shifted.exp(), k * shifted.neg().exp()


def total_log_decays(g_fwd: Tensor, g_bwd: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Prefix sums of both gates along T, then each scan's total log-decay ([..., 1, K])."""
    g_f, prefix_b = g_fwd.cumsum(-2), g_bwd.cumsum(-2)
    return g_f, prefix_b, g_f[..., -1:, :], prefix_b[..., -1:, :]


def bigla_quadratic(
    q: Tensor, k: Tensor, v: Tensor, g_fwd: Tensor, g_bwd: Tensor, scale: float, limit: float
) -> Tensor | None:
    """of + ob, halved and scaled, for [..., T, K] q, k, gates and [..., T, V] v in one compute dtype (fp32 / fp64).

    Returns None (no work done beyond two cumulative sums) when a channel's total log-decay over T is too large
    to factorise safely (`limit`: the largest magnitude allowed, twice the largest exponent of a factor);
    differentiable by autograd.
    """
    sums = total_log_decays(g_fwd, g_bwd)
    if bool(torch.minimum(sums[2], sums[3]).amin() < -limit):  # one sync
        return None
    return _quadratic(q, k, v, g_bwd, scale, *sums)


def _quadratic(
    q: Tensor, k: Tensor, v: Tensor, g_bwd: Tensor, scale: float, g_f: Tensor,
    prefix_b: Tensor, total_f: Tensor, total_b: Tensor,
) -> Tensor:  # fmt: skip
    # references r: half of each direction's total, so every factor's exponent is at most half the total;
    # backward H_i = sum_{s >= i} g_bwd_s = total_b - prefix_i + g_bwd_i, so H_i - r needs no flips
    shifted_f = g_f - 0.5 * total_f
    shifted_b = (0.5 * total_b - prefix_b) + g_bwd
    q = q * (0.5 * scale)  # o = (of + ob) / 2 is linear in q
    q_f, k_f = _factors(q, k, shifted_f)
    q_b, k_b = _factors(q, k, shifted_b)
    lower = torch.matmul(q_f, k_f.transpose(-1, -2))
    upper = torch.matmul(q_b, k_b.transpose(-1, -2))
    scores = lower.tril_().add_(upper.mul_(upper_mask(upper)))  # the diagonal counts in both; triu_ is 5x slower
    return torch.matmul(scores, v)


def upper_mask(scores: Tensor) -> Tensor:
    """[T, T] ones on and above the diagonal, zeros below, in scores' dtype and device."""
    return _cached_upper_mask(scores.shape[-1], scores.dtype, scores.device)


@lru_cache(maxsize=8)
def _cached_upper_mask(length: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    # a normal tensor even when first built under inference_mode, so that training can use it later
    with torch.inference_mode(False), torch.no_grad():
        return torch.ones(length, length, dtype=dtype, device=device).triu_()
