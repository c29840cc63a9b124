"""Triton kernels of bidirectional gated linear attention: one fused forward, one fused backward (docs/bigla.md).

One program per (batch, head) sequence walks the chunks of BT tokens. With G the chunk-local cumulative log-decay
(prefix sums for the forward scan, suffix sums for the backward one), every exponent the kernels take is <= 0:
- inside a chunk, the exact weights exp(G_i - G_j) of the pairs a scan reaches ([BT, BT, K], the other pairs are
  set to -inf before exp), so no input can overflow (no (q e^G)(k e^-G)^T factorisation);
- across chunks, a K x V fp32 state decayed by exp(G_total) and read through q exp(G) (or k exp(G_total - G)).

Forward (o = scale / 2 * (of + ob)): sweep 1 runs the backward scan (last chunk first) and writes its half to o,
sweep 2 the forward scan, adding the other half. Backward: with A = dO v^T, and the "D" states that carry q^T dO
against each scan's direction,
- sweep 1 (first chunk first): dq of the forward scan (state S), dk and dv of the backward scan (state D_b);
- sweep 2 (last chunk first): dq of the backward scan (state R), dk and dv of the forward scan (state D_f), and
  d g_fwd_t = sum_{t' >= t} (q dq_f - k dk_f)_{t'} as a running suffix sum; the backward scan's per-token terms
  q dq_b - k dk_b go to the d g_bwd buffer,
- sweep 3 (first chunk first): d g_bwd_t = sum_{t' <= t} of those terms, in place.
Each direction's gate gradient uses only its own dq and dk (docs/bigla.md, "Backward").

Precision: loads are cast to fp32; cumulative gates, exponents, the [BT, BT, K] weights and the states are fp32.
`tl.dot` runs either exactly in fp32 (`DOT_FP32`, input_precision="ieee": no TF32) or on operands rounded to
`DOT_DTYPE` (fp16 / bf16 inputs) with fp32 accumulation. Rows past T are loaded as zeros (k = v = 0 add nothing to a
state, log-decay 0 keeps it) and never stored.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr):
    """a @ b with fp32 accumulation: exact fp32 (no TF32), or on operands rounded to DOT_DTYPE."""
    if DOT_FP32:
        return tl.dot(a, b, input_precision="tf32x3")
    else:
        return tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE))


@triton.jit
def _load(base, stride_t, rows, cols, T):
    """A [BT, D] tile of a [T, D] sequence (row stride stride_t, unit column stride) in fp32; zeros past T."""
    mask = rows[:, None] < T
    return tl.load(base + rows[:, None] * stride_t + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _store(base, stride_t, rows, cols, T, value):
    mask = rows[:, None] < T
    tl.store(base + rows[:, None] * stride_t + cols[None, :], value.to(base.dtype.element_ty), mask=mask)


@triton.jit
def _pair_weights(G, FORWARD_SCAN: tl.constexpr, BT: tl.constexpr):
    """[BT, BT, K] weights exp(G_i - G_j) of query i and key j: j <= i (forward scan, G = prefix sums) or j >= i
    (backward scan, G = suffix sums), 0 elsewhere; the exponent of a kept pair is <= 0."""
    i = tl.arange(0, BT)[:, None, None]
    j = tl.arange(0, BT)[None, :, None]
    keep = (j <= i) if FORWARD_SCAN else (j >= i)
    diff = G[:, None, :] - G[None, :, :]
    return tl.exp(tl.where(keep, diff, float("-inf")))


@triton.jit
def _cumulative(g, FORWARD_SCAN: tl.constexpr):
    """Chunk-local cumulative log-decays: prefix sums (forward scan) or suffix sums (backward scan)."""
    return tl.cumsum(g, axis=0, reverse=not FORWARD_SCAN)


@triton.jit
def _forward_sweep(
    q_ptr, k_ptr, v_ptr, g_ptr, o_ptr,
    stride_q, stride_k, stride_v, stride_g, stride_o,
    T, half_scale,
    FORWARD_SCAN: tl.constexpr, ACCUMULATE: tl.constexpr,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """One scan over the whole sequence: o (+)= half_scale * scan(q, k, v, g)."""
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    state = tl.zeros([K, V], dtype=tl.float32)
    num_chunks = tl.cdiv(T, BT)
    for n in range(0, num_chunks):
        chunk = n if FORWARD_SCAN else num_chunks - 1 - n
        rows = chunk * BT + tl.arange(0, BT)
        q = _load(q_ptr, stride_q, rows, rk, T)
        k = _load(k_ptr, stride_k, rows, rk, T)
        v = _load(v_ptr, stride_v, rows, rv, T)
        g = _load(g_ptr, stride_g, rows, rk, T)
        G = _cumulative(g, FORWARD_SCAN)
        total = tl.sum(g, axis=0)  # the chunk's whole log-decay, [K]
        scores = tl.sum(q[:, None, :] * k[None, :, :] * _pair_weights(G, FORWARD_SCAN, BT), axis=2)
        out = _dot(scores, v, DOT_FP32, DOT_DTYPE) + _dot(q * tl.exp(G), state, DOT_FP32, DOT_DTYPE)
        out = out * half_scale
        if ACCUMULATE:
            out += _load(o_ptr, stride_o, rows, rv, T)
        _store(o_ptr, stride_o, rows, rv, T, out)
        k_to_end = k * tl.exp(total[None, :] - G)  # decay from each token to the chunk's far end
        state = tl.exp(total)[:, None] * state + _dot(tl.trans(k_to_end), v, DOT_FP32, DOT_DTYPE)


@triton.jit
def bigla_fwd_kernel(
    q, k, v, g_fwd, g_bwd, o,
    sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, sv_b, sv_h, sv_t, sgf_b, sgf_h, sgf_t, sgb_b, sgb_h, sgb_t,
    T, H, half_scale,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """o = half_scale * (forward scan with g_fwd + backward scan with g_bwd); o is a contiguous [B, H, T, V]."""
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    q += b * sq_b + h * sq_h
    k += b * sk_b + h * sk_h
    v += b * sv_b + h * sv_h
    g_fwd += b * sgf_b + h * sgf_h
    g_bwd += b * sgb_b + h * sgb_h
    o += bh * T * V
    _forward_sweep(q, k, v, g_bwd, o, sq_t, sk_t, sv_t, sgb_t, V, T, half_scale,
                   False, False, K, V, BT, DOT_FP32, DOT_DTYPE)  # fmt: skip
    _forward_sweep(q, k, v, g_fwd, o, sq_t, sk_t, sv_t, sgf_t, V, T, half_scale,
                   True, True, K, V, BT, DOT_FP32, DOT_DTYPE)  # fmt: skip


@triton.jit
def _dq_sweep(
    q_ptr, k_ptr, v_ptr, do_ptr, g_ptr, dq_ptr, dk_ptr, dg_own_ptr, dg_other_ptr,
    stride_q, stride_k, stride_v, stride_do, stride_g,
    T, half_scale,
    FORWARD_SCAN: tl.constexpr, LAST: tl.constexpr,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """dq of one scan, walked in its own time order: the pairs inside a chunk exactly, the rest through its state.

    First call (forward scan): write dq. LAST (backward scan): add the forward scan's dq found in dq_ptr, write this
    scan's gate terms q dq - k dk (its dk is in dk_ptr) to dg_own_ptr and the forward scan's q dq to dg_other_ptr.
    """
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    state = tl.zeros([K, V], dtype=tl.float32)
    num_chunks = tl.cdiv(T, BT)
    for n in range(0, num_chunks):
        chunk = n if FORWARD_SCAN else num_chunks - 1 - n
        rows = chunk * BT + tl.arange(0, BT)
        k = _load(k_ptr, stride_k, rows, rk, T)
        v = _load(v_ptr, stride_v, rows, rv, T)
        do = _load(do_ptr, stride_do, rows, rv, T) * half_scale
        g = _load(g_ptr, stride_g, rows, rk, T)
        G = _cumulative(g, FORWARD_SCAN)
        total = tl.sum(g, axis=0)
        attn = _dot(do, tl.trans(v), DOT_FP32, DOT_DTYPE)  # A_ij = dO_i . v_j
        dq = tl.sum(attn[:, :, None] * k[None, :, :] * _pair_weights(G, FORWARD_SCAN, BT), axis=1)
        dq += tl.exp(G) * _dot(do, tl.trans(state), DOT_FP32, DOT_DTYPE)
        k_to_end = k * tl.exp(total[None, :] - G)
        state = tl.exp(total)[:, None] * state + _dot(tl.trans(k_to_end), v, DOT_FP32, DOT_DTYPE)
        if LAST:
            q = _load(q_ptr, stride_q, rows, rk, T)
            dq_other = _load(dq_ptr, K, rows, rk, T)
            _store(dq_ptr, K, rows, rk, T, dq + dq_other)
            _store(dg_own_ptr, K, rows, rk, T, q * dq - k * _load(dk_ptr, K, rows, rk, T))
            _store(dg_other_ptr, K, rows, rk, T, q * dq_other)
        else:
            _store(dq_ptr, K, rows, rk, T, dq)


@triton.jit
def _dkv_sweep(
    q_ptr, k_ptr, v_ptr, do_ptr, g_ptr, dk_ptr, dv_ptr, dg_ptr,
    stride_q, stride_k, stride_v, stride_do, stride_g,
    T, half_scale,
    FORWARD_SCAN: tl.constexpr, LAST: tl.constexpr,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """dk and dv of one scan, walked against its time order with D = sum of decayed q^T dO of the queries passed.

    First call (backward scan): write dk, dv. LAST (forward scan): add them to what is there, and finish this scan's
    gate gradient: dg_ptr holds q dq of this scan; d g_t = sum over t' >= t of (q dq - k dk)_t', a running suffix sum.
    """
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    d_state = tl.zeros([K, V], dtype=tl.float32)
    carry = tl.zeros([K], dtype=tl.float32)
    num_chunks = tl.cdiv(T, BT)
    for n in range(0, num_chunks):
        chunk = num_chunks - 1 - n if FORWARD_SCAN else n
        rows = chunk * BT + tl.arange(0, BT)
        q = _load(q_ptr, stride_q, rows, rk, T)
        k = _load(k_ptr, stride_k, rows, rk, T)
        v = _load(v_ptr, stride_v, rows, rv, T)
        do = _load(do_ptr, stride_do, rows, rv, T) * half_scale
        g = _load(g_ptr, stride_g, rows, rk, T)
        G = _cumulative(g, FORWARD_SCAN)
        total = tl.sum(g, axis=0)
        attn = _dot(do, tl.trans(v), DOT_FP32, DOT_DTYPE)  # A_ij = dO_i . v_j
        weights = _pair_weights(G, FORWARD_SCAN, BT)  # [query i, key j, channel]
        to_near_end = tl.exp(total[None, :] - G)  # decay from each token to the chunk end the walk came from
        dk = tl.sum(attn[:, :, None] * q[:, None, :] * weights, axis=0)
        dk += to_near_end * _dot(v, tl.trans(d_state), DOT_FP32, DOT_DTYPE)
        scores = tl.sum(q[:, None, :] * k[None, :, :] * weights, axis=2)
        dv = _dot(tl.trans(scores), do, DOT_FP32, DOT_DTYPE) + _dot(k * to_near_end, d_state, DOT_FP32, DOT_DTYPE)
        d_state = tl.exp(total)[:, None] * d_state + _dot(tl.trans(q * tl.exp(G)), do, DOT_FP32, DOT_DTYPE)
        if LAST:
            _store(dk_ptr, K, rows, rk, T, dk + _load(dk_ptr, K, rows, rk, T))
            _store(dv_ptr, V, rows, rv, T, dv + _load(dv_ptr, V, rows, rv, T))
            terms = _load(dg_ptr, K, rows, rk, T) - k * dk
            _store(dg_ptr, K, rows, rk, T, tl.cumsum(terms, axis=0, reverse=True) + carry[None, :])
            carry += tl.sum(terms, axis=0)
        else:
            _store(dk_ptr, K, rows, rk, T, dk)
            _store(dv_ptr, V, rows, rv, T, dv)


@triton.jit
def _prefix_sum(x_ptr, T, K: tl.constexpr, BT: tl.constexpr):
    """In place: x_t <- sum_{t' <= t} x_t' over a contiguous [T, K] fp32 buffer."""
    rk = tl.arange(0, K)
    carry = tl.zeros([K], dtype=tl.float32)
    num_chunks = tl.cdiv(T, BT)
    for n in range(0, num_chunks):
        rows = n * BT + tl.arange(0, BT)
        x = _load(x_ptr, K, rows, rk, T)
        _store(x_ptr, K, rows, rk, T, tl.cumsum(x, axis=0) + carry[None, :])
        carry += tl.sum(x, axis=0)


@triton.jit
def bigla_bwd_kernel(
    q, k, v, g_fwd, g_bwd, do, dq, dk, dv, dg_fwd, dg_bwd,
    sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, sv_b, sv_h, sv_t, sgf_b, sgf_h, sgf_t, sgb_b, sgb_h, sgb_t,
    sdo_b, sdo_h, sdo_t,
    T, H, half_scale,
    K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """dq, dk, dg_fwd, dg_bwd ([B, H, T, K]) and dv ([B, H, T, V]), all contiguous fp32."""
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    q += b * sq_b + h * sq_h
    k += b * sk_b + h * sk_h
    v += b * sv_b + h * sv_h
    g_fwd += b * sgf_b + h * sgf_h
    g_bwd += b * sgb_b + h * sgb_h
    do += b * sdo_b + h * sdo_h
    dq += bh * T * K
    dk += bh * T * K
    dv += bh * T * V
    dg_fwd += bh * T * K
    dg_bwd += bh * T * K
    # dq of the forward scan; dk, dv of the backward scan (both walked first chunk first)
    _dq_sweep(q, k, v, do, g_fwd, dq, dk, dg_bwd, dg_fwd, sq_t, sk_t, sv_t, sdo_t, sgf_t, T, half_scale, True, False,
              K, V, BT, DOT_FP32, DOT_DTYPE)  # fmt: skip
    _dkv_sweep(q, k, v, do, g_bwd, dk, dv, dg_bwd, sq_t, sk_t, sv_t, sdo_t, sgb_t, T, half_scale, False, False,
               K, V, BT, DOT_FP32, DOT_DTYPE)  # fmt: skip
    # dq of the backward scan and both scans' gate terms; dk, dv of the forward scan and its d g (last chunk first)
    _dq_sweep(q, k, v, do, g_bwd, dq, dk, dg_bwd, dg_fwd, sq_t, sk_t, sv_t, sdo_t, sgb_t, T, half_scale, False, True,
              K, V, BT, DOT_FP32, DOT_DTYPE)  # fmt: skip
    _dkv_sweep(q, k, v, do, g_fwd, dk, dv, dg_fwd, sq_t, sk_t, sv_t, sdo_t, sgf_t, T, half_scale, True, True,
               K, V, BT, DOT_FP32, DOT_DTYPE)  # fmt: skip
    _prefix_sum(dg_bwd, T, K, BT)  # d g_bwd_t = sum over t' <= t of the backward scan's gate terms
