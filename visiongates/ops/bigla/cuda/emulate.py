"""A PyTorch model of the BiGLA CUDA kernels' algorithm, step for step, to check the algorithm without a GPU.

The kernels (csrc/) run one thread block per (batch, head) and sweep the sequence twice in chunks of C = 16
tokens, each sweep carrying K x V states on chip; this module does the same arithmetic on whole [B, H] batches.
Within a sweep tokens are taken in sweep order (reversed for the right-to-left sweep), so the direction that runs
with the sweep ("nat") is always a forward scan and the other one ("anti") a backward scan:

    forward   sweep A (right to left): y_b = nat scan of g_bwd -> fp32 scratch
              sweep B (left to right): y_f = nat scan of g_fwd;  o = scale / 2 * (y_b + y_f)
    backward  sweep A: dq_b (nat, state R) and dk_f, dv_f (anti, d-state H_f) -> fp32 scratch
              sweep B: dq_f (nat, state S) and dk_b, dv_b (anti, d-state H_b), added to the scratch

Inside a chunk the pair weight exp(G_i - G_j) (G the chunk-local cumulative log-decay, j before i in the scan's
order, so the exponent is <= 0) is factorised as exp(G_i) * exp(A - G_j) * exp(-A), A the chunk's total, when
every channel has A >= -FACTOR_LIMIT (then no factor leaves fp32's range); otherwise it is evaluated pair by pair.
Gate gradients: d log a_t = sum over t' after t in scan order of (q dq - k dk)_{t'} (each direction its own
dq, dk; docs/bigla.md). Sweep A keeps the part it can (a running sum), sweep B adds the rest, using that the totals
sum_t q dq = sum_t k dk of one direction are equal (every pair term appears once in each).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK = 16
FACTOR_LIMIT = 60.0  # exp(60) ~ 1e26: factors and their products stay normal fp32 numbers


def _tiles(x: Tensor, reverse: bool) -> Tensor:
    """[B, H, T, D] -> [B, H, N, C, D] in sweep order (zero rows pad the last chunk, first when reversed)."""
    pad = -x.shape[-2] % CHUNK
    x = F.pad(x, (0, 0, 0, pad))
    return (x.flip(-2) if reverse else x).unflatten(-2, (-1, CHUNK))


def _untile(x: Tensor, length: int, reverse: bool) -> Tensor:
    x = x.flatten(-3, -2)
    return (x.flip(-2) if reverse else x)[..., :length, :]


def _nat_tables(g: Tensor):
    """Forward-scan tables of one chunk: G (inclusive prefix), exp(G), exp(A - G), exp(-A) and the safe flag."""
    G = g.cumsum(-2)
    A = G[..., -1:, :]
    safe = (A >= -FACTOR_LIMIT).all(-1, keepdim=True)  # [B, H, 1, 1]: one flag per chunk, as in the kernel
    return G, G.exp(), (A - G).exp(), (-A.clamp(min=-FACTOR_LIMIT)).exp(), A.exp().transpose(-1, -2), safe


def _anti_tables(g: Tensor):
    """Backward-scan tables: Gh (inclusive suffix), exp(Gh), exp(Ah - Gh), exp(-Ah), Ah = Gh_0 the total."""
    Gh = g.flip(-2).cumsum(-2).flip(-2)
    A = Gh[..., :1, :]
    safe = (A >= -FACTOR_LIMIT).all(-1, keepdim=True)
    return Gh, Gh.exp(), (A - Gh).exp(), (-A.clamp(min=-FACTOR_LIMIT)).exp(), A.exp().transpose(-1, -2), safe


def _pair_scores(a, b, G, factor_a, factor_b, z, safe, lower: bool):
    """sum_c a_ic b_jc exp(G_ic - G_jc) over the strict lower (j < i) or upper (j > i) triangle, zero elsewhere."""
    fast = (a * factor_a) @ (b * factor_b * z).transpose(-1, -2)
    exponent = G.unsqueeze(-2) - G.unsqueeze(-3)  # [.., i, j, c] = G_ic - G_jc
    mask = torch.ones(CHUNK, CHUNK, dtype=torch.bool, device=a.device)
    mask = mask.tril(-1) if lower else mask.triu(1)
    exact = (a.unsqueeze(-2) * b.unsqueeze(-3) * torch.where(mask[..., None], exponent, -torch.inf).exp()).sum(-1)
    return torch.where(mask, torch.where(safe, fast, exact), 0.0)


def _pair_rows(w, b, G, factor_out, factor_sum, z, safe, sign: float):
    """out_xc = sum_{y < x} w_xy b_yc exp(sign * (G_xc - G_yc)) for a [C, C] weight w (the exponent is <= 0).

    nat dq: x = i, y = j, sign +1. anti dk: x = j, y = i, w = dP^T, sign -1 (weight exp(Gh_i - Gh_j)).
    """
    mask = torch.ones(CHUNK, CHUNK, dtype=torch.bool, device=w.device).tril(-1)
    w = torch.where(mask, w, 0.0)
    fast = factor_out * (w @ (b * factor_sum * z))
    exponent = torch.where(mask[..., None], sign * (G.unsqueeze(-2) - G.unsqueeze(-3)), -torch.inf)
    exact = (w.unsqueeze(-1) * b.unsqueeze(-3) * exponent.exp()).sum(-2)
    return torch.where(safe, fast, exact)


def nat_scan(q, k, v, g) -> Tensor:
    """y_i = sum_{j <= i} (q_i * exp(G_i - G_j)) . k_j v_j in sweep order, chunk by chunk (forward kernel sweep)."""
    n_chunks = q.shape[-3]
    state = q.new_zeros(*q.shape[:-3], q.shape[-1], v.shape[-1])
    out = []
    for n in range(n_chunks):
        qc, kc, vc, gc = q[..., n, :, :], k[..., n, :, :], v[..., n, :, :], g[..., n, :, :]
        G, eG, eAG, z, decay, safe = _nat_tables(gc)
        P = _pair_scores(qc, kc, G, eG, eAG, z, safe, lower=True)
        P = P + torch.diag_embed((qc * kc).sum(-1))
        out.append(P @ vc + (qc * eG) @ state)
        state = decay * state + (kc * eAG).transpose(-1, -2) @ vc
    return torch.stack(out, dim=-3)


def forward(q, k, v, g_fwd, g_bwd, scale: float) -> Tensor:
    """The forward kernel's arithmetic (fp32 or fp64); returns o [B, H, T, V]."""
    T = q.shape[-2]
    y_b = _untile(nat_scan(*(_tiles(x, True) for x in (q, k, v, g_bwd))), T, True)  # sweep A -> scratch
    y_f = _untile(nat_scan(*(_tiles(x, False) for x in (q, k, v, g_fwd))), T, False)  # sweep B
    return 0.5 * scale * (y_b + y_f)


def bwd_sweep(q, k, v, e, gn, ga):
    """One backward sweep in sweep order: dq of the nat direction, dk and dv of the anti direction, and the gate
    terms x_q = q * dq_nat, x_k = k * dk_anti (without the i = j pair terms, which cancel in q dq - k dk)."""
    zeros = q.new_zeros(*q.shape[:-3], q.shape[-1], v.shape[-1])
    state, dstate = zeros, zeros.clone()  # nat state N (S or R), anti d-state D (H_b or H_f)
    dq, dk, dv, xq, xk = [], [], [], [], []
    for n in range(q.shape[-3]):
        qc, kc, vc, ec = q[..., n, :, :], k[..., n, :, :], v[..., n, :, :], e[..., n, :, :]
        dP = ec @ vc.transpose(-1, -2)  # dP_ij = e_i . v_j
        diag = torch.diagonal(dP, dim1=-2, dim2=-1).unsqueeze(-1)
        # nat (forward scan): dq_i = sum_{j<i} dP_ij k_j exp(G_i - G_j) + exp(G_i) (N e_i)
        G, eG, eAG, z, decay, safe = _nat_tables(gn[..., n, :, :])
        dq_strict = _pair_rows(dP, kc, G, eG, eAG, z, safe, 1.0) + eG * (ec @ state.transpose(-1, -2))
        xq.append(qc * dq_strict)
        dq.append(dq_strict + diag * kc)
        state = decay * state + (kc * eAG).transpose(-1, -2) @ vc
        # anti (backward scan): pairs i < j with weight exp(Gh_i - Gh_j)
        Gh, eGh, eAGh, zh, decay_h, safe_h = _anti_tables(ga[..., n, :, :])
        dk_strict = _pair_rows(dP.transpose(-1, -2), qc, Gh, eAGh, eGh, zh, safe_h, -1.0)
        dk_strict = dk_strict + eAGh * (vc @ dstate.transpose(-1, -2))
        xk.append(kc * dk_strict)
        dk.append(dk_strict + diag * qc)
        Pa = _pair_scores(qc, kc, Gh, eGh, eAGh, zh, safe_h, lower=False)
        Pa = Pa + torch.diag_embed((qc * kc).sum(-1))
        dv.append(Pa.transpose(-1, -2) @ ec + (kc * eAGh) @ dstate)
        dstate = decay_h * dstate + (qc * eGh).transpose(-1, -2) @ ec
    return tuple(torch.stack(x, dim=-3) for x in (dq, dk, dv, xq, xk))


def _exclusive_cumsum(x: Tensor) -> Tensor:
    return x.cumsum(-2) - x


def backward(grad_out, q, k, v, g_fwd, g_bwd, scale: float):
    """The backward kernel's arithmetic: (dq, dk, dv, dg_fwd, dg_bwd), each [B, H, T, *]."""
    T = q.shape[-2]
    e = 0.5 * scale * grad_out  # dL/dy for both directions' unscaled scans
    # sweep A (right to left): nat = backward direction, anti = forward direction
    a = [_untile(x, T, True) for x in bwd_sweep(*(_tiles(x, True) for x in (q, k, v, e, g_bwd, g_fwd)))]
    dq_b, dk_f, dv_f, xq_b, xk_f = a
    # running sums in sweep order (flipped back: "before in sweep A" = "after in time")
    part_b = -_exclusive_cumsum(xq_b.flip(-2)).flip(-2)  # -sum_{t'>t} q dq_b
    part_f = -xk_f.flip(-2).cumsum(-2).flip(-2)  # -sum_{t'>=t} k dk_f
    tot_q = xq_b.sum(-2, keepdim=True)  # = sum k dk_b
    tot_k = xk_f.sum(-2, keepdim=True)  # = sum q dq_f
    # sweep B (left to right): nat = forward direction, anti = backward direction
    b = [_untile(x, T, False) for x in bwd_sweep(*(_tiles(x, False) for x in (q, k, v, e, g_fwd, g_bwd)))]
    dq_f, dk_b, dv_b, xq_f, xk_b = b
    dg_fwd = part_f + tot_k - _exclusive_cumsum(xq_f)
    dg_bwd = part_b + tot_q - xk_b.cumsum(-2)
    return dq_b + dq_f, dk_f + dk_b, dv_f + dv_b, dg_fwd, dg_bwd
