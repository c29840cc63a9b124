"""Triton kernels of bidirectional gated linear attention (v2): intra-chunk products on tensor cores, only state
recurrences sequential.

docs/bigla.md ("The Triton kernels") gives the algorithm; in short, per (batch, head) the sequence is cut into chunks
of BT tokens and
- `bigla_state_kernel`, grid (B * H, 1) in the forward: the backward scan's K x V state recurrence, walked in its
  time order, storing the state each chunk starts from. With WITH_GRAD (the backward), grid (B * H, 2): program
  (bh, d) walks scan d against its order over the states the forward stored and stores the gradient each chunk's
  end state receives from the chunks after it in scan order (dh, carried from the queries' q^T dO).
- `bigla_fwd_kernel`, grid (B * H,): walks each sequence's chunks in time order with the forward scan's state in
  registers, reading the backward scan's start states: every input is read once and o written once, so the forward
  moves the single-pass minimum plus the backward scan's state pass. With SAVE_STATES (a backward follows) it also
  stores every forward-scan state for it. Its exact pass, grid (B * H, num_chunks), redoes the chunks either scan
  flags.
- `bigla_bwd_dqk_kernel` and `bigla_bwd_dv_kernel`, grid (B * H, num_chunks), one program per chunk: the pairs
  inside the chunk plus the stored states; each scan's gate gradient is finished in the chunk from its own
  q dq - k dk terms and, for the tokens past the chunk, the identity dL/dg = sum_V(h_end * dh) at the chunk
  boundary.

Gates are natural log-decays; they are multiplied by log2(e) on load and every exponential is an exp2. With G the
chunk-local cumulative gate (prefix sums for the forward scan, suffix sums for the backward one), the pairs of a
chunk are P_ij = sum_c q_ic k_jc 2^(G_ic - G_jc) for j <= i (forward) or j >= i (backward):
- fast path: one tensor-core product (q 2^(G - r)) (k 2^(r - G))^T, r = G at the chunk's middle row, masked with
  `where`. Its factors grow as 2^|total gate of the chunk|, so it is taken only when that span stays within
  FACTORISE_LIMIT (log2 units: 48 for fp32 / bf16 operands, 8 for fp16's narrower range); every chunk of a trained
  ViG qualifies.
- exact path (any chunk that does not): a tree of log2(BT) tensor-core products. At level s, the queries of each
  right-hand (forward scan) block of s tokens meet the keys of the block before it through the boundary between
  them, 2^(G_i - G_j) = 2^(G_i - G_b) 2^(G_b - G_j), both exponents <= 0; the diagonal is q_i . k_i. No exponent
  above 0 is taken, so log-decays down to -20 per token cannot overflow at any T.

Precision: loads are cast to fp32; gates, exponents and states are fp32 in registers. `_dot` runs fp32 operands as
3xTF32 (about fp32 accuracy; exact fp32 in the interpreter), half operands rounded to DOT_DTYPE with fp32 accumulate;
with ROUND_DOTS (the interpreter's half-precision mode) the operands are rounded to DOT_DTYPE and multiplied in fp32,
which is exact for bf16 and fp16 products, as a tensor core computes them. States travel between kernels in
DOT_DTYPE (their only use is as a dot operand, which rounds them to that dtype anyway). Offsets of a sequence's
start are int64. Rows past T load as zeros (k = v = 0 add nothing, gate 0 keeps a state) and are never stored.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def _round(x, DOT_DTYPE: tl.constexpr):
    """fp32 x rounded to DOT_DTYPE to nearest even, as a GPU converts it, kept in fp32. bf16 by its bits: the
    interpreter's own bf16 cast truncates."""
    if tl.bfloat16 == DOT_DTYPE:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True)
    else:
        return x.to(DOT_DTYPE).to(tl.float32)


@triton.jit
def _dot(a, b, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):
    """a @ b with fp32 accumulation: fp32 operands as 3xTF32, or operands rounded to DOT_DTYPE (ROUND_DOTS: as
    exact fp32 products of the rounded operands, which is what a tensor core computes)."""
    if DOT_FP32:
        return tl.dot(a, b, input_precision="tf32x3")
    elif ROUND_DOTS:
        return tl.dot(_round(a, DOT_DTYPE), _round(b, DOT_DTYPE), input_precision="ieee")
    else:
        return tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE))


@triton.jit
def _load(base, stride_t, rows, cols, T):
    """A [BT, D] tile of a [T, D] sequence (row stride stride_t, unit column stride) in fp32; zeros past T."""
    return tl.load(base + rows[:, None] * stride_t + cols[None, :], mask=rows[:, None] < T, other=0.0).to(tl.float32)


@triton.jit
def _store(base, stride_t, rows, cols, T, value):
    tl.store(base + rows[:, None] * stride_t + cols[None, :], value.to(base.dtype.element_ty), mask=rows[:, None] < T)


@triton.jit
def _gates(g_ptr, stride_g, rows, rk, T, FORWARD_SCAN: tl.constexpr):
    """(g, G, to_end, total) of a chunk in log2 units: the gates; G, their chunk-local prefix (forward scan) or
    suffix sums; to_end, the decay from each token to the chunk's far end (the sums over the tokens after it in scan
    order: summed directly, not as total - G, whose rounding grows with |total|); the chunk's total [K]."""
    g = _load(g_ptr, stride_g, rows, rk, T) * LOG2E
    to_end = tl.cumsum(g, axis=0, reverse=FORWARD_SCAN) - g
    return g, tl.cumsum(g, axis=0, reverse=not FORWARD_SCAN), to_end, tl.sum(g, axis=0)


@triton.jit
def _state_offset(bh, direction, chunk, num_chunks, K: tl.constexpr, V: tl.constexpr):
    """Element offset of state [bh, direction, chunk] in a contiguous [B * H, 2, num_chunks, K, V] buffer (int64)."""
    return ((bh.to(tl.int64) * 2 + direction) * num_chunks + chunk) * (K * V)


@triton.jit
def _load_state(h_ptr, K: tl.constexpr, V: tl.constexpr):
    return tl.load(h_ptr + tl.arange(0, K)[:, None] * V + tl.arange(0, V)[None, :]).to(tl.float32)


@triton.jit
def _store_state(h_ptr, state, K: tl.constexpr, V: tl.constexpr):
    tl.store(h_ptr + tl.arange(0, K)[:, None] * V + tl.arange(0, V)[None, :], state.to(h_ptr.dtype.element_ty))


@triton.jit
def _pairs(FORWARD_SCAN: tl.constexpr, BT: tl.constexpr):
    """(i, j) index grids of a chunk's [query, key] pairs, and the pairs a scan reaches (j <= i or j >= i)."""
    i = tl.arange(0, BT)[:, None]
    j = tl.arange(0, BT)[None, :]
    keep = (j <= i) if FORWARD_SCAN else (j >= i)
    return i, j, keep


@triton.jit
def _level_exponents(g, s: tl.constexpr, FORWARD_SCAN: tl.constexpr, BT: tl.constexpr, K: tl.constexpr):
    """Query and key exponents of the tree's level s: the gates summed from each token to the boundary between its
    block of s tokens and the partner block, both <= 0, each summed directly within the block (not as a difference
    of longer sums, whose rounding grows with the chunk's total)."""
    blocks = tl.reshape(g, [BT // s, s, K])
    to_query = tl.cumsum(blocks, axis=1, reverse=not FORWARD_SCAN)
    from_key = tl.cumsum(blocks, axis=1, reverse=FORWARD_SCAN) - blocks
    return tl.reshape(to_query, [BT, K]), tl.reshape(from_key, [BT, K])


@triton.jit
def _level_pairs(i, j, s: tl.constexpr, FORWARD_SCAN: tl.constexpr):
    """Pairs of level s: query block right after (forward scan) or before its key block, within one block of 2s."""
    if FORWARD_SCAN:
        return (i // s == j // s + 1) & ((j // s) % 2 == 0)
    else:
        return (j // s == i // s + 1) & ((i // s) % 2 == 0)


@triton.jit
def _fast_factors(G, BT: tl.constexpr):
    """Query and key factors of the fast path, 2^(G - r) and 2^(r - G), r = G at the chunk's middle row."""
    ref = tl.sum(tl.where(tl.arange(0, BT)[:, None] == BT // 2 - 1, G, 0.0), axis=0)[None, :]
    return tl.exp2(G - ref), tl.exp2(ref - G)


@triton.jit
def _intra(q, k, attn, g, G, EXACT: tl.constexpr, FORWARD_SCAN: tl.constexpr, GRADS: tl.constexpr,
           LOG2_BT: tl.constexpr, BT: tl.constexpr, K: tl.constexpr, DOT_FP32: tl.constexpr,
           DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):  # fmt: skip
    """A chunk's pairs of one scan: (P, dq, dk) with P_ij = sum_c q_ic k_jc w_ijc, w_ijc = 2^(G_ic - G_jc) for the
    pairs the scan reaches (0 elsewhere) and, with GRADS (attn_ij = dO_i . v_j), dq_i = sum_j attn_ij k_j w_ij and
    dk_j = sum_i attn_ij q_i w_ij (else dq = dk = 0): the tree when EXACT, else the fast path."""
    if EXACT:
        scores, dq, dk = _intra_tree(q, k, attn, g, FORWARD_SCAN, GRADS, LOG2_BT, BT, K, DOT_FP32, DOT_DTYPE,
                                     ROUND_DOTS)  # fmt: skip
    else:
        scores, dq, dk = _intra_fast(q, k, attn, G, FORWARD_SCAN, GRADS, BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    return scores, dq, dk


@triton.jit
def _intra_fast(q, k, attn, G, FORWARD_SCAN: tl.constexpr, GRADS: tl.constexpr, BT: tl.constexpr,
                DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):  # fmt: skip
    """`_intra` as one factorised tensor-core product per output, masked with `where`."""
    i, j, keep = _pairs(FORWARD_SCAN, BT)
    q_factor, k_factor = _fast_factors(G, BT)
    qf = q * q_factor
    kf = k * k_factor
    scores = tl.where(keep, _dot(qf, tl.trans(kf), DOT_FP32, DOT_DTYPE, ROUND_DOTS), 0.0)
    if GRADS:
        masked = tl.where(keep, attn, 0.0)
        dq = q_factor * _dot(masked, kf, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
        dk = k_factor * _dot(tl.trans(masked), qf, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    else:
        dq = tl.zeros_like(q)
        dk = tl.zeros_like(k)
    return scores, dq, dk


@triton.jit
def _intra_tree(q, k, attn, g, FORWARD_SCAN: tl.constexpr, GRADS: tl.constexpr, LOG2_BT: tl.constexpr,
                BT: tl.constexpr, K: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
                ROUND_DOTS: tl.constexpr):  # fmt: skip
    """`_intra` exactly for any gates: the diagonal, then one tensor-core product per level of the tree, every
    exponent <= 0. With GRADS only dq and dk (P stays its diagonal: the callers that want gradients do not use it)."""
    i, j, keep = _pairs(FORWARD_SCAN, BT)
    diagonal = i == j
    scores = tl.where(diagonal, tl.sum(q * k, axis=1)[:, None], 0.0)
    if GRADS:
        attn_diagonal = tl.sum(tl.where(diagonal, attn, 0.0), axis=1)[:, None]
        dq = attn_diagonal * k
        dk = attn_diagonal * q
    else:
        dq = tl.zeros_like(q)
        dk = tl.zeros_like(k)
    for level in tl.static_range(1, LOG2_BT + 1):
        q_exp, k_exp = _level_exponents(g, BT >> level, FORWARD_SCAN, BT, K)
        pairs = _level_pairs(i, j, BT >> level, FORWARD_SCAN)
        if GRADS:  # dq here, dk in a second loop: one accumulator live at a time
            dq += tl.exp2(q_exp) * _dot(tl.where(pairs, attn, 0.0), k * tl.exp2(k_exp), DOT_FP32, DOT_DTYPE,
                                        ROUND_DOTS)  # fmt: skip
        else:
            products = _dot(q * tl.exp2(q_exp), tl.trans(k * tl.exp2(k_exp)), DOT_FP32, DOT_DTYPE, ROUND_DOTS)
            scores += tl.where(pairs, products, 0.0)
    if GRADS:
        for level in tl.static_range(1, LOG2_BT + 1):
            q_exp, k_exp = _level_exponents(g, BT >> level, FORWARD_SCAN, BT, K)
            masked = tl.where(_level_pairs(i, j, BT >> level, FORWARD_SCAN), attn, 0.0)
            dk += tl.exp2(k_exp) * _dot(tl.trans(masked), q * tl.exp2(q_exp), DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    return scores, dq, dk


@triton.jit
def _state_walk(k_ptr, v_ptr, g_ptr, h_ptr, flags_ptr, stride_k, stride_v, stride_g, bh, direction, T,
                FORWARD_SCAN: tl.constexpr, LIMIT: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):  # fmt: skip
    """One scan's states, walked in its time order: h[chunk] = the state the chunk starts from, and flags[chunk] =
    whether the chunk's span (-total gate, log2 units) passes LIMIT (the exact pass then redoes it)."""
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    num_chunks = tl.cdiv(T, BT)
    state = tl.zeros([K, V], dtype=tl.float32)
    for n in range(0, num_chunks):
        chunk = n if FORWARD_SCAN else num_chunks - 1 - n
        offset = _state_offset(bh, direction, chunk, num_chunks, K, V)
        _store_state(h_ptr + offset, _round(state, DOT_DTYPE) if ROUND_DOTS else state, K, V)
        rows = chunk * BT + tl.arange(0, BT)
        k = _load(k_ptr, stride_k, rows, rk, T)
        v = _load(v_ptr, stride_v, rows, rv, T)
        _, _, to_end, total = _gates(g_ptr, stride_g, rows, rk, T, FORWARD_SCAN)
        tl.store(flags_ptr + offset // (K * V), (-tl.min(total, axis=0) > LIMIT).to(tl.int8))
        state = tl.exp2(total)[:, None] * state + _dot(tl.trans(k * tl.exp2(to_end)), v, DOT_FP32, DOT_DTYPE,
                                                         ROUND_DOTS)  # fmt: skip


@triton.jit
def _gradient_walk(q_ptr, g_ptr, do_ptr, h_ptr, dh_ptr, beyond_ptr, stride_q, stride_g, stride_do, bh, direction, T,
                   half_scale, FORWARD_SCAN: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                   DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):  # fmt: skip
    """One scan's state gradients, walked against its time order: dh[chunk] = the gradient of the chunk's end state
    from the chunks after it and beyond[chunk] = sum_V(h_end * dh) [K], the scan's gate gradient summed over the
    tokens after the chunk (h: the states the forward stored)."""
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    num_chunks = tl.cdiv(T, BT)
    d_state = tl.zeros([K, V], dtype=tl.float32)
    for n in range(0, num_chunks):
        chunk = num_chunks - 1 - n if FORWARD_SCAN else n
        offset = _state_offset(bh, direction, chunk, num_chunks, K, V)
        _store_state(dh_ptr + offset, _round(d_state, DOT_DTYPE) if ROUND_DOTS else d_state, K, V)
        if n > 0:  # the gradient of the next chunk's first gate: sum_V(h_end * dh), h_end = the next one's start
            after = chunk + 1 if FORWARD_SCAN else chunk - 1
            h_end = _load_state(h_ptr + _state_offset(bh, direction, after, num_chunks, K, V), K, V)
            beyond = tl.sum(h_end * d_state, axis=1)
        else:
            beyond = tl.zeros([K], dtype=tl.float32)
        tl.store(beyond_ptr + offset // V + rk, beyond)
        rows = chunk * BT + tl.arange(0, BT)
        q = _load(q_ptr, stride_q, rows, rk, T)
        do = _load(do_ptr, stride_do, rows, rv, T) * half_scale
        _, G, _, total = _gates(g_ptr, stride_g, rows, rk, T, FORWARD_SCAN)
        d_state = tl.exp2(total)[:, None] * d_state + _dot(tl.trans(q * tl.exp2(G)), do,
                                                            DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip


@triton.jit
def bigla_state_kernel(
    q, k, v, g_fwd, g_bwd, do, h, dh, beyond, flags,
    sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, sv_b, sv_h, sv_t, sgf_b, sgf_h, sgf_t, sgb_b, sgb_h, sgb_t,
    sdo_b, sdo_h, sdo_t,
    T, H, half_scale,
    WITH_GRAD: tl.constexpr, LIMIT: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
    DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr,
):  # fmt: skip
    """The sequential parts besides the forward walk, on h [B * H, 2, num_chunks, K, V] and flags [B * H, 2,
    num_chunks] (int8). Without WITH_GRAD (the forward), grid (B * H, 1): the backward scan's start states and
    flags (`bigla_fwd_kernel` carries the forward scan's state itself and stores it where the backward needs it).
    With WITH_GRAD (the backward), grid (B * H, 2), program (bh, d) walks scan d back over the states the forward
    stored: dh (as h) and beyond [B * H, 2, num_chunks, K] (fp32). k and v are read only without WITH_GRAD, q and
    do only with it."""
    bh = tl.program_id(0)
    b = (bh // H).to(tl.int64)
    hd = (bh % H).to(tl.int64)
    if WITH_GRAD:
        q += b * sq_b + hd * sq_h
        do += b * sdo_b + hd * sdo_h
        if tl.program_id(1) == 0:
            _gradient_walk(q, g_fwd + b * sgf_b + hd * sgf_h, do, h, dh, beyond, sq_t, sgf_t, sdo_t, bh, 0, T,
                           half_scale, True, K, V, BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
        else:
            _gradient_walk(q, g_bwd + b * sgb_b + hd * sgb_h, do, h, dh, beyond, sq_t, sgb_t, sdo_t, bh, 1, T,
                           half_scale, False, K, V, BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
    else:
        _state_walk(k + b * sk_b + hd * sk_h, v + b * sv_b + hd * sv_h, g_bwd + b * sgb_b + hd * sgb_h, h, flags,
                    sk_t, sv_t, sgb_t, bh, 1, T, False, LIMIT, K, V, BT, DOT_FP32, DOT_DTYPE,
                    ROUND_DOTS)  # fmt: skip


@triton.jit
def _exact(flags, bh, chunk, num_chunks):
    """Whether a chunk goes to the exact pass: either scan's span passed the limit (flags of the state kernel)."""
    flag_f = tl.load(flags + (bh.to(tl.int64) * 2 + 0) * num_chunks + chunk)
    flag_b = tl.load(flags + (bh.to(tl.int64) * 2 + 1) * num_chunks + chunk)
    return (flag_f + flag_b) != 0


@triton.jit
def _fwd_chunk(q, k, v, g_fwd, g_bwd, h, o, sq_t, sk_t, sv_t, sgf_t, sgb_t, bh, chunk, num_chunks, T, half_scale,
               K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, LOG2_BT: tl.constexpr, DOT_FP32: tl.constexpr,
               DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):  # fmt: skip
    """One chunk's output of both scans by the exact tree, from both scans' stored start states."""
    rows = chunk * BT + tl.arange(0, BT)
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    q = _load(q, sq_t, rows, rk, T)
    k = _load(k, sk_t, rows, rk, T)
    v = _load(v, sv_t, rows, rv, T)
    g_f, G_f, _, _ = _gates(g_fwd, sgf_t, rows, rk, T, True)
    g_b, G_b, _, _ = _gates(g_bwd, sgb_t, rows, rk, T, False)
    scores_f, _, _ = _intra(q, k, q, g_f, G_f, True, True, False, LOG2_BT, BT, K, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    scores_b, _, _ = _intra(q, k, q, g_b, G_b, True, False, False, LOG2_BT, BT, K, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    out = _dot(scores_f + scores_b, v, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    out += _dot(q * tl.exp2(G_f), _load_state(h + _state_offset(bh, 0, chunk, num_chunks, K, V), K, V),
                DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
    out += _dot(q * tl.exp2(G_b), _load_state(h + _state_offset(bh, 1, chunk, num_chunks, K, V), K, V),
                DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
    _store(o + bh.to(tl.int64) * T * V, V, rows, rv, T, out * half_scale)


@triton.jit
def _fwd_walk(q, k, v, g_fwd, g_bwd, h, flags, o, sq_t, sk_t, sv_t, sgf_t, sgb_t, bh, num_chunks, T, half_scale,
              SAVE_STATES: tl.constexpr, LIMIT: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
              DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):  # fmt: skip
    """Every chunk's output of both scans by the factorised product, walked in time order with the forward scan's
    state in registers (the backward scan's start states come from the state kernel). Each chunk's forward flag is
    stored; its forward start state is stored where either scan flags the chunk (its span passes LIMIT), for the
    exact pass, which rewrites its output (the factorised one may overflow there; the state update never does: its
    exponents are <= 0), and with SAVE_STATES everywhere, for the backward."""
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    state = tl.zeros([K, V], dtype=tl.float32)
    for chunk in range(0, num_chunks):
        rows = chunk * BT + tl.arange(0, BT)
        q_tile = _load(q, sq_t, rows, rk, T)
        k_tile = _load(k, sk_t, rows, rk, T)
        v_tile = _load(v, sv_t, rows, rv, T)
        _, G_f, to_end, total = _gates(g_fwd, sgf_t, rows, rk, T, True)
        _, G_b, _, _ = _gates(g_bwd, sgb_t, rows, rk, T, False)
        forward_at = _state_offset(bh, 0, chunk, num_chunks, K, V)
        backward_at = _state_offset(bh, 1, chunk, num_chunks, K, V)
        flag = (-tl.min(total, axis=0) > LIMIT).to(tl.int8)
        tl.store(flags + forward_at // (K * V), flag)
        if SAVE_STATES or (flag + tl.load(flags + backward_at // (K * V))) != 0:
            _store_state(h + forward_at, _round(state, DOT_DTYPE) if ROUND_DOTS else state, K, V)
        scores_f, _, _ = _intra_fast(q_tile, k_tile, q_tile, G_f, True, False, BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
        scores_b, _, _ = _intra_fast(q_tile, k_tile, q_tile, G_b, False, False, BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
        out = _dot(scores_f + scores_b, v_tile, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
        out += _dot(q_tile * tl.exp2(G_f), state, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
        out += _dot(q_tile * tl.exp2(G_b), _load_state(h + backward_at, K, V), DOT_FP32, DOT_DTYPE, ROUND_DOTS)
        _store(o + bh.to(tl.int64) * T * V, V, rows, rv, T, out * half_scale)
        state = tl.exp2(total)[:, None] * state + _dot(tl.trans(k_tile * tl.exp2(to_end)), v_tile, DOT_FP32,
                                                       DOT_DTYPE, ROUND_DOTS)  # fmt: skip


@triton.jit
def bigla_fwd_kernel(
    q, k, v, g_fwd, g_bwd, h, flags, o,
    sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, sv_b, sv_h, sv_t, sgf_b, sgf_h, sgf_t, sgb_b, sgb_h, sgb_t,
    T, H, half_scale,
    EXACT: tl.constexpr, SAVE_STATES: tl.constexpr, LIMIT: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
    BT: tl.constexpr, LOG2_BT: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
    ROUND_DOTS: tl.constexpr,
):  # fmt: skip
    """o = half_scale * (forward scan with g_fwd + backward scan with g_bwd), o a contiguous [B, H, T, V]; h and
    flags hold the backward scan's states and flags from `bigla_state_kernel`. The factorised pass, grid (B * H,),
    walks each sequence's chunks carrying the forward scan's state and stores it (and its flag) where a chunk is
    flagged (with SAVE_STATES at every chunk: the states the backward reads); the EXACT pass, grid (B * H,
    num_chunks), then redoes the flagged chunks (most programs return at once)."""
    bh = tl.program_id(0)
    num_chunks = tl.cdiv(T, BT)
    b = (bh // H).to(tl.int64)
    hd = (bh % H).to(tl.int64)
    q += b * sq_b + hd * sq_h
    k += b * sk_b + hd * sk_h
    v += b * sv_b + hd * sv_h
    g_fwd += b * sgf_b + hd * sgf_h
    g_bwd += b * sgb_b + hd * sgb_h
    if EXACT:
        chunk = tl.program_id(1)
        if _exact(flags, bh, chunk, num_chunks):
            _fwd_chunk(q, k, v, g_fwd, g_bwd, h, o, sq_t, sk_t, sv_t, sgf_t, sgb_t, bh, chunk, num_chunks, T,
                       half_scale, K, V, BT, LOG2_BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
    else:
        _fwd_walk(q, k, v, g_fwd, g_bwd, h, flags, o, sq_t, sk_t, sv_t, sgf_t, sgb_t, bh, num_chunks, T, half_scale,
                  SAVE_STATES, LIMIT, K, V, BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip


@triton.jit
def _dqk_chunk(q, k, v, do, g, h, dh, beyond, dq, dk, dg, sq_t, sk_t, sv_t, sg_t, sdo_t, bh, chunk, T, half_scale,
               FORWARD_SCAN: tl.constexpr, EXACT: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
               LOG2_BT: tl.constexpr, DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr,
               ROUND_DOTS: tl.constexpr):  # fmt: skip
    """One scan's share of a chunk's dq and dk (stored to its fp32 scratch) and its gate gradient: d g_t sums
    q dq - k dk over t' >= t (forward scan) or t' <= t, inside the chunk by a cumulative sum, past it by `beyond`.
    h: the chunk's start state; dh: the gradient of its end state from the chunks after it."""
    rows = chunk * BT + tl.arange(0, BT)
    rk = tl.arange(0, K)
    rv = tl.arange(0, V)
    q = _load(q, sq_t, rows, rk, T)
    k = _load(k, sk_t, rows, rk, T)
    v = _load(v, sv_t, rows, rv, T)
    do = _load(do, sdo_t, rows, rv, T) * half_scale
    g, G, to_end, _ = _gates(g, sg_t, rows, rk, T, FORWARD_SCAN)
    attn = _dot(do, tl.trans(v), DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # attn_ij = dO_i . v_j
    _, grad_q, grad_k = _intra(q, k, attn, g, G, EXACT, FORWARD_SCAN, True, LOG2_BT, BT, K,
                               DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
    grad_q += tl.exp2(G) * _dot(do, tl.trans(_load_state(h, K, V)), DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    grad_k += tl.exp2(to_end) * _dot(v, tl.trans(_load_state(dh, K, V)), DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    terms = tl.cumsum(q * grad_q - k * grad_k, axis=0, reverse=FORWARD_SCAN)
    offset = bh.to(tl.int64) * T * K
    _store(dg + offset, K, rows, rk, T, terms + tl.load(beyond + rk)[None, :])
    _store(dq + offset, K, rows, rk, T, grad_q)
    _store(dk + offset, K, rows, rk, T, grad_k)


@triton.jit
def bigla_bwd_dqk_kernel(
    q, k, v, g_fwd, g_bwd, do, h, dh, beyond, flags, dq, dk, dg_fwd, dg_bwd,
    sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, sv_b, sv_h, sv_t, sgf_b, sgf_h, sgf_t, sgb_b, sgb_h, sgb_t,
    sdo_b, sdo_h, sdo_t,
    T, H, half_scale,
    EXACT: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, LOG2_BT: tl.constexpr,
    DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr,
):  # fmt: skip
    """One scan's (program_id(2): 0 forward, 1 backward) share of dq and dk (fp32 [2, B, H, T, K]; the caller sums
    the two) and its gate gradient (dg_fwd or dg_bwd, [B, H, T, K] in its buffer's dtype) for chunk program_id(1);
    h, dh, beyond and flags from `bigla_state_kernel` with WITH_GRAD. One scan per program keeps it within the
    registers. The fast pass does the chunks not flagged, the EXACT pass the flagged ones."""
    bh = tl.program_id(0)
    chunk = tl.program_id(1)
    direction = tl.program_id(2)
    num_chunks = tl.cdiv(T, BT)
    b = (bh // H).to(tl.int64)
    hd = (bh % H).to(tl.int64)
    exact = _exact(flags, bh, chunk, num_chunks)
    q += b * sq_b + hd * sq_h
    k += b * sk_b + hd * sk_h
    v += b * sv_b + hd * sv_h
    do += b * sdo_b + hd * sdo_h
    state = _state_offset(bh, direction, chunk, num_chunks, K, V)
    scratch = direction.to(tl.int64) * tl.num_programs(0) * T * K  # this scan's half of [2, B, H, T, K]
    if exact == EXACT:
        if direction == 0:
            _dqk_chunk(q, k, v, do, g_fwd + b * sgf_b + hd * sgf_h, h + state, dh + state, beyond + state // V,
                       dq + scratch, dk + scratch, dg_fwd, sq_t, sk_t, sv_t, sgf_t, sdo_t, bh, chunk, T,
                       half_scale, True, EXACT, K, V, BT, LOG2_BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
        else:
            _dqk_chunk(q, k, v, do, g_bwd + b * sgb_b + hd * sgb_h, h + state, dh + state, beyond + state // V,
                       dq + scratch, dk + scratch, dg_bwd, sq_t, sk_t, sv_t, sgb_t, sdo_t, bh, chunk, T,
                       half_scale, False, EXACT, K, V, BT, LOG2_BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip


@triton.jit
def _dv_scan(q, k, do, g, sg_t, dh, rows, T, FORWARD_SCAN: tl.constexpr, EXACT: tl.constexpr, K: tl.constexpr,
             V: tl.constexpr, BT: tl.constexpr, LOG2_BT: tl.constexpr, DOT_FP32: tl.constexpr,
             DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr):  # fmt: skip
    """One scan's share of a chunk's dv: P^T dO inside the chunk, (k decayed to the chunk's end) dh past it."""
    g, G, to_end, _ = _gates(g, sg_t, rows, tl.arange(0, K), T, FORWARD_SCAN)
    scores, _, _ = _intra(q, k, q, g, G, EXACT, FORWARD_SCAN, False, LOG2_BT, BT, K, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    inside = _dot(tl.trans(scores), do, DOT_FP32, DOT_DTYPE, ROUND_DOTS)
    return inside + _dot(k * tl.exp2(to_end), _load_state(dh, K, V), DOT_FP32, DOT_DTYPE, ROUND_DOTS)


@triton.jit
def bigla_bwd_dv_kernel(
    q, k, g_fwd, g_bwd, do, dh, flags, dv,
    sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, sgf_b, sgf_h, sgf_t, sgb_b, sgb_h, sgb_t, sdo_b, sdo_h, sdo_t,
    T, H, half_scale,
    EXACT: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, LOG2_BT: tl.constexpr,
    DOT_FP32: tl.constexpr, DOT_DTYPE: tl.constexpr, ROUND_DOTS: tl.constexpr,
):  # fmt: skip
    """dv ([B, H, T, V], contiguous, in its buffer's dtype) of chunk program_id(1); dh and flags from
    `bigla_state_kernel`. The fast pass does the chunks not flagged, the EXACT pass the flagged ones."""
    bh = tl.program_id(0)
    chunk = tl.program_id(1)
    num_chunks = tl.cdiv(T, BT)
    b = (bh // H).to(tl.int64)
    hd = (bh % H).to(tl.int64)
    exact = _exact(flags, bh, chunk, num_chunks)
    if exact == EXACT:
        rows = chunk * BT + tl.arange(0, BT)
        rk = tl.arange(0, K)
        rv = tl.arange(0, V)
        q_tile = _load(q + b * sq_b + hd * sq_h, sq_t, rows, rk, T)
        k_tile = _load(k + b * sk_b + hd * sk_h, sk_t, rows, rk, T)
        do_tile = _load(do + b * sdo_b + hd * sdo_h, sdo_t, rows, rv, T) * half_scale
        grad = _dv_scan(q_tile, k_tile, do_tile, g_fwd + b * sgf_b + hd * sgf_h, sgf_t,
                        dh + _state_offset(bh, 0, chunk, num_chunks, K, V), rows, T, True, EXACT, K, V, BT, LOG2_BT,
                        DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
        grad += _dv_scan(q_tile, k_tile, do_tile, g_bwd + b * sgb_b + hd * sgb_h, sgb_t,
                         dh + _state_offset(bh, 1, chunk, num_chunks, K, V), rows, T, False, EXACT, K, V, BT,
                         LOG2_BT, DOT_FP32, DOT_DTYPE, ROUND_DOTS)  # fmt: skip
        _store(dv + bh.to(tl.int64) * T * V, V, rows, rv, T, grad)
