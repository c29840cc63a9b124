"""Chunked parallel bidirectional gated linear attention in plain PyTorch (the CPU and export backend).

ViG (Liao et al., "ViG: Linear-complexity Visual Sequence Learning with Gated Linear Attention", 2024) mixes
tokens with o_t = (of_t + ob_t) / 2, a forward and a backward GLA scan (Yang et al., "Gated Linear Attention
Transformers with Hardware-Efficient Training", 2023) that share q, k, v and differ in their log-decays; see
docs/bigla.md and `naive.py` for the recurrence. With G the cumulative log-decay (prefix sums for the forward scan,
suffix sums for the backward one), the two scans are

    of_i = sum_{j <= i} (q_i * exp(G_i - G_j)) . k_j  v_j,      ob_i = sum_{j >= i} (same with the backward G)

The sequence is cut into chunks of C tokens (C a power of two) with G local to each chunk:
- Across chunks a K x V state is carried, S_n = diag(exp(G_total)) S_{n-1} + (k * exp(G_total - G))^T v, and a
  chunk reads it with (q * exp(G)) S; one loop over T / C chunks (one fused multiply-add each) per direction.
- Inside a chunk, the default path uses (q e^G)(k e^-G)^T, masked to j <= i (forward) and j >= i (backward) and
  summed into one score matrix. e^-G grows, so this is used only for chunks whose total log-decay stays above
  -FACTORISE_LIMIT (every chunk of a trained ViG: its log-decays are logsigmoid(z)/16, a few hundredths); any other
  chunk is masked out there and redone by the tree below, so no input can overflow.
- The tree (always used with `static=True`, e.g. for export): at the level of blocks of b tokens, every query i of
  a block's right half meets every key j of its left half through the boundary r (the left half's last token),
  exp(G_i - G_j) = exp(G_i - G_r) exp(G_r - G_j), both exponents <= 0; one unmasked matmul per level, and
  log2(C) levels plus the diagonal (weight 1) cover every pair once.

Work per token and head is O(C (K + V) + K V) multiply-adds, memory is linear in T (autograd keeps a constant
number of T-sized tensors, per tree level on the tree path, plus T / C states). States and cumulative gates are
fp32 (fp64 for fp64 inputs). With `static=True` there is no data-dependent branch and no loop over chunks (the
states entering each chunk are one masked N x N sum), so the computation traces to ordinary ops for a symbolic T
(ONNX export with dynamic height and width); `bigla_traceable` puts that and the short-sequence form in one graph.
Sequences of at most QUADRATIC_MAX_LENGTH tokens skip the chunks (quadratic.py). The backward is autograd through
this forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .naive import compute_dtype
from .quadratic import bigla_quadratic, upper_mask
from .registry import register_backend

DEFAULT_CHUNK_SIZE = 64
# largest total log-decay magnitude of a chunk for which (q e^G)(k e^-G)^T is used: e^30 ~ 1e13 leaves fp32
# ample headroom for |q|, |k| and keeps every factor a normal number; fp64 goes much further.
FACTORISE_LIMIT = {torch.float32: 30.0, torch.float64: 300.0}
# up to this many tokens `bigla_chunk` (not static) computes each direction as one T x T product (quadratic.py):
# at one CPU thread it beat the chunks at T = 49 and 196 (ViG-T at 224 px) and lost at T = 256
QUADRATIC_MAX_LENGTH = 224
# chunk of the export path (`gla_scan_pairwise`): its [C, C, K] pair weights take C times the memory and the exps
# of q; the chunk states' N x N weights grow as (T / C)^2. In onnxruntime (one thread, K = 32, V = 64, H = 3) 16
# took 3.1 / 13.9 / 95 ms at T = 196 / 784 / 3136 against 32's 5.6 / 22.4 / 97 ms (docs/benchmarks.md)
PAIRWISE_CHUNK_SIZE = 16


def _chunked(chunk_size: int, *tensors: Tensor, static: bool = False) -> tuple[int, int, list[Tensor]]:
    """Pad [..., T, D] tensors to whole chunks (zeros) and view them as [rows, C, D], rows = prod(...) * N.

    Returns (C, N, tensors). Zero keys and values add nothing to a state, zero log-decays keep it, and the outputs
    of padded queries are dropped by the caller. `static`: C = chunk_size whatever T, and no branch on T, so that
    T may be a symbolic size (torch.export / ONNX with dynamic height and width).
    """
    if chunk_size < 1 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two, got {chunk_size}")
    length = tensors[0].shape[-2]
    # eager: no more padding than the next power of 2
    chunk = chunk_size if static else min(chunk_size, 1 << max(length - 1, 0).bit_length())
    num_chunks = (length + chunk - 1) // chunk
    pad = num_chunks * chunk - length
    padded = [F.pad(t, (0, 0, 0, pad)) if static or pad else t for t in tensors]
    return chunk, num_chunks, [t.reshape(-1, chunk, t.shape[-1]) for t in padded]


def _unchunk(out: Tensor, like: Tensor) -> Tensor:
    """[rows, C, V] back to [..., T, V] of the unpadded input `like` ([..., T, D])."""
    return out.reshape(*like.shape[:-2], -1, out.shape[-1])[..., : like.shape[-2], :]


def _tree_pairs(q: Tensor, k: Tensor, v: Tensor, gc: Tensor) -> Tensor:
    """Intra-chunk forward-scan output, overflow-free: the diagonal plus one matmul pair per tree level.

    q, k, gc: [rows, C, K] (gc = chunk-local prefix sums of the log-decays); v: [rows, C, V] -> [rows, C, V].
    """
    out = (q * k).sum(-1, keepdim=True) * v  # i == j: weight exp(0) = 1
    block, chunk = 2, q.shape[-2]
    while block <= chunk:
        half = block // 2
        qs, ks, vs, gs = (t.unflatten(-2, (-1, 2, half)) for t in (q, k, v, gc))  # [rows, C / b, 2, half, D]
        ref = gs[..., 0, half - 1 :, :]  # prefix sum at the left half's last token
        q_right = qs[..., 1, :, :] * (gs[..., 1, :, :] - ref).exp()  # exp(G_i - G_r) <= 1
        k_left = ks[..., 0, :, :] * (ref - gs[..., 0, :, :]).exp()  # exp(G_r - G_j) <= 1
        right = (q_right @ k_left.transpose(-1, -2)) @ vs[..., 0, :, :]  # [rows, C / b, half, V]
        out = out + F.pad(right, (0, 0, half, 0)).flatten(-3, -2)  # zeros for the left halves
        block *= 2
    return out


def _carried_states(
    k: Tensor, v: Tensor, gc: Tensor, num_chunks: int, reverse: bool = False, k_grown: Tensor | None = None
) -> Tensor:
    """The state each chunk reads: left by all earlier chunks (all later ones if `reverse`), [rows, K, V].

    k, gc: [rows, C, K]; v: [rows, C, V]; gc holds chunk-local prefix sums (suffix sums if `reverse`). A chunk's
    own state is (k e^(G_total - G))^T v; given k_grown = k e^-G (finite), it is computed as e^G_total (k_grown^T v).
    """
    g_total = gc[:, :1] if reverse else gc[:, -1:]  # a chunk's total log-decay: [rows, 1, K]
    decays = g_total.transpose(1, 2).exp()  # [rows, K, 1]
    if k_grown is None:
        own = torch.bmm((k * (g_total - gc).exp()).transpose(1, 2), v)
    else:
        own = torch.bmm(k_grown.transpose(1, 2), v) * decays
    own, decays = own.unflatten(0, (-1, num_chunks)), decays.unflatten(0, (-1, num_chunks))  # [P, N, K, V | 1]
    state = torch.zeros_like(own[:, 0])
    states = [state]
    for n in range(num_chunks - 1, 0, -1) if reverse else range(num_chunks - 1):
        state = torch.addcmul(own[:, n], decays[:, n], state)
        states.append(state)
    return torch.stack(states[::-1] if reverse else states, dim=1).flatten(0, 1)


def _carried_states_parallel(k: Tensor, v: Tensor, gc: Tensor, num_chunks) -> Tensor:
    """`_carried_states` (forward scan) without a loop over chunks, for a symbolic chunk count N: [rows, K, V].

    The state entering chunk n is sum_{m < n} exp(sum_{m < l < n} G_l) own_m (G_l: chunk l's total log-decay,
    own_m: chunk m's own state). The exponents are summed directly (masked cumulative sums, not differences of
    prefix sums, which would lose precision), masked with `where` before exp and never positive: one N x N
    weighted sum per channel, O(N^2 K V) per row; N = T / C is small.
    """
    g_total = gc[:, -1:]  # [rows, 1, K]
    own = torch.bmm((k * (g_total - gc).exp()).transpose(1, 2), v).unflatten(0, (-1, num_chunks))  # [P, N, K, V]
    g_total = g_total.squeeze(1).unflatten(0, (-1, num_chunks)).transpose(1, 2)  # [P, K, N]
    idx = torch.arange(num_chunks, device=k.device)
    n, m = idx[:, None], idx[None, :]
    # terms[p, c, n, m] = G_{n-1} where m < n - 1 (else 0); their cumulative sum over n is sum_{m < l < n} G_l
    previous = F.pad(g_total, (1, 0))[..., :-1]  # G_{n-1}, 0 for n = 0
    terms = torch.where(m < n - 1, previous[..., :, None], previous.new_zeros(()))  # [P, K, N, N]
    weights = torch.where(m < n, terms.cumsum(-2), -torch.inf).exp()  # exp(<= 0); 0 where m >= n
    states = weights @ own.permute(0, 2, 1, 3)  # [P, K, N, N] @ [P, K, N, V] -> [P, K, N, V]
    return states.permute(0, 2, 1, 3).flatten(0, 1)


def gla_scan_tree(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor:
    """One forward-direction GLA scan (no scale) by the tree and the chunk states, with no data-dependent branch
    and no Python loop over T: the traced graph holds for any T (symbolic under torch.export).

    q, k, g: [..., T, K]; v: [..., T, V] -> [..., T, V], computed in the inputs' dtype (fp32 or fp64).
    """
    chunk, num_chunks, (qc, kc, vc, gc) = _chunked(chunk_size, q, k, v, g, static=True)
    gc = gc.cumsum(1)
    out = _tree_pairs(qc, kc, vc, gc)
    out = torch.baddbmm(out, qc * gc.exp(), _carried_states_parallel(kc, vc, gc, num_chunks))
    return _unchunk(out, v)


def _redo_with_tree(out: Tensor, unsafe: Tensor, q: Tensor, k: Tensor, v: Tensor, gc: Tensor, reverse: bool) -> Tensor:
    """Add the tree's intra-chunk output for the rows flagged `unsafe` ([rows]) to `out` ([rows, C, V])."""
    rows = unsafe.nonzero().squeeze(1)
    picked = [t.index_select(0, rows) for t in (q, k, v, gc)]
    if reverse:  # the backward scan of a chunk is the forward scan of its reversal (suffix sums become prefixes)
        picked = [t.flip(1) for t in picked]
    fixed = _tree_pairs(*picked)
    return out.index_add(0, rows, fixed.flip(1) if reverse else fixed)


def _bigla_factorised(q: Tensor, k: Tensor, v: Tensor, g_fwd: Tensor, g_bwd: Tensor, chunk_size: int) -> Tensor:
    """of + ob (not halved), both scans at once without copies of q, k, v; [..., T, V]."""
    chunk, num_chunks, (qc, kc, vc, gf, gb) = _chunked(chunk_size, q, k, v, g_fwd, g_bwd)
    limit = FACTORISE_LIMIT[qc.dtype]
    gf = gf.cumsum(1)  # G_i = sum_{s <= i} g_fwd_s: forward weights exp(G_i - G_j), j <= i
    prefix = gb.cumsum(1)
    gb = prefix[:, -1:] - prefix + gb  # G_i = sum_{s >= i} g_bwd_s: backward weights exp(G_i - G_j), j >= i
    totals_f, totals_b = gf[:, -1], gb[:, 0]  # each chunk's total log-decay per channel: [rows, K]
    all_safe_f = all_safe_b = bool(torch.minimum(totals_f, totals_b).amin() >= -limit)  # one sync, the usual case
    if not all_safe_f:
        safe_f, safe_b = totals_f.amin(-1) >= -limit, totals_b.amin(-1) >= -limit  # [rows]
        all_safe_f, all_safe_b = bool(safe_f.all()), bool(safe_b.all())
    q_f, q_b = qc * gf.exp(), qc * gb.exp()
    if all_safe_f and all_safe_b:
        k_f, k_b = kc * gf.neg().exp_(), kc * gb.neg().exp_()
    else:  # clamped where a chunk is unsafe (those rows are masked out below and redone by the tree)
        k_f, k_b = (kc * t.neg().clamp(max=limit).exp() for t in (gf, gb))
    scores_f = torch.bmm(q_f, k_f.transpose(1, 2)).tril_()
    scores_b = torch.bmm(q_b, k_b.transpose(1, 2))
    scores_b = scores_b.mul_(upper_mask(scores_b))  # triu_, which is several times slower on CPU
    if not all_safe_f:
        scores_f = scores_f * safe_f[:, None, None]
    if not all_safe_b:
        scores_b = scores_b * safe_b[:, None, None]
    out = torch.bmm(scores_f.add_(scores_b), vc)  # [rows, C, V]
    if not all_safe_f:
        out = _redo_with_tree(out, ~safe_f, qc, kc, vc, gf, reverse=False)
    if not all_safe_b:
        out = _redo_with_tree(out, ~safe_b, qc, kc, vc, gb, reverse=True)
    if num_chunks > 1:
        grown = (k_f, k_b) if all_safe_f and all_safe_b else (None, None)  # k e^-G, exact when no chunk is clamped
        out.baddbmm_(q_f, _carried_states(kc, vc, gf, num_chunks, k_grown=grown[0]))  # in place: bmm's backward
        out.baddbmm_(q_b, _carried_states(kc, vc, gb, num_chunks, reverse=True, k_grown=grown[1]))  # needs no `out`
    return _unchunk(out, v)


def bigla_chunk(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g_fwd: Tensor,
    g_bwd: Tensor,
    scale: float | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    static: bool = False,
) -> Tensor:
    """Bidirectional GLA, chunked. Layouts as `visiongates.ops.bigla.bigla`; output in v's dtype.

    Up to QUADRATIC_MAX_LENGTH tokens (and unless `static`) each direction is one masked T x T product
    (quadratic.py). `static=True` takes the tree path for every chunk (the backward scan as the forward scan of the
    time-reversed inputs, both in one batch): no data-dependent branch and no loop over T, for export.
    """
    if chunk_size < 1 or chunk_size & (chunk_size - 1):
        raise ValueError(f"chunk_size must be a power of two, got {chunk_size}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    out_dtype, dtype = v.dtype, compute_dtype(q, k, v, g_fwd, g_bwd)
    q, k, v, g_fwd, g_bwd = (t.to(dtype) for t in (q, k, v, g_fwd, g_bwd))
    if not static and q.shape[-2] <= QUADRATIC_MAX_LENGTH:  # short sequences: one T x T product per direction
        out = bigla_quadratic(q, k, v, g_fwd, g_bwd, scale, limit=2 * FACTORISE_LIMIT[dtype])
        if out is not None:  # None: a total log-decay too large to factorise; the chunks below are exact
            return out.to(out_dtype)
    q = q * (0.5 * scale)  # o = (of + ob) / 2 is linear in q
    if static:
        both = (torch.stack((t, t.flip(-2))) for t in (q, k, v))
        out = gla_scan_tree(*both, torch.stack((g_fwd, g_bwd.flip(-2))), chunk_size)
        out = out[0] + out[1].flip(-2)
    else:
        out = _bigla_factorised(q, k, v, g_fwd, g_bwd, chunk_size)
    return out.to(out_dtype)


def gla_scan_pairwise(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk_size: int = PAIRWISE_CHUNK_SIZE) -> Tensor:
    """`gla_scan_tree` with the intra-chunk weights exp(G_i - G_j) formed per pair and channel ([rows, C, C, K],
    masked to j <= i before exp, so never above 1): exact for any gate like the tree, in a few dozen ops instead
    of a group per tree level, so that a model traces in seconds. The weights take C times the memory of q.

    q, k, g: [..., T, K]; v: [..., T, V] -> [..., T, V]; q, k, v and g are padded and chunked as one tensor.
    """
    dims = [q.shape[-1], k.shape[-1], v.shape[-1], g.shape[-1]]
    chunk, num_chunks, (packed,) = _chunked(chunk_size, torch.cat((q, k, v, g), -1), static=True)
    qc, kc, vc, gc = packed.split(dims, -1)
    gc = gc.cumsum(1)
    idx = torch.arange(chunk, device=q.device)
    causal = (idx[:, None] >= idx[None, :]).unsqueeze(-1)  # [C, C, 1]: key j at or before query i
    decay = torch.where(causal, gc.unsqueeze(2) - gc.unsqueeze(1), -torch.inf).exp()  # [rows, C, C, K]
    scores = (qc.unsqueeze(2) * kc.unsqueeze(1) * decay).sum(-1)  # [rows, C, C]
    out = torch.baddbmm(torch.bmm(scores, vc), qc * gc.exp(), _carried_states_parallel(kc, vc, gc, num_chunks))
    return _unchunk(out, v)


def bigla_traceable(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g_fwd: Tensor,
    g_bwd: Tensor,
    scale: float | None = None,
    chunk_size: int = PAIRWISE_CHUNK_SIZE,
) -> Tensor:
    """`bigla_chunk` for tracing (ONNX export, torch.export), with a fixed or a symbolic T (dynamic height and
    width): both scans by `gla_scan_pairwise` (the backward one as the forward scan of the reversed inputs, in one
    batch). One path, no data-dependent branch: one exported file serves every length and every gate, and a ViG
    traces in seconds (the earlier graph, a `torch.cond` over the short form, factorised chunks and the tree, took
    minutes: torch.export traces every branch, and each traced op costs milliseconds)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    out_dtype, dtype = v.dtype, compute_dtype(q, k, v, g_fwd, g_bwd)
    q, k, v, g_fwd, g_bwd = (t if t.dtype == dtype else t.to(dtype) for t in (q, k, v, g_fwd, g_bwd))
    qk = torch.cat((q * (0.5 * scale), k), -1)  # o = (of + ob) / 2 is linear in q
    q, k = torch.stack((qk, qk.flip(-2))).split([q.shape[-1], k.shape[-1]], -1)  # backward: the reversed forward
    v = torch.stack((v, v.flip(-2)))
    out = gla_scan_pairwise(q, k, v, torch.stack((g_fwd, g_bwd.flip(-2))), chunk_size)
    out = out[0] + out[1].flip(-2)
    return out if out.dtype == out_dtype else out.to(out_dtype)


register_backend("chunk", bigla_chunk)
