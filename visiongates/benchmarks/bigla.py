"""BiGLA op benchmark (CPU): chunked vs naive speed, and how the chunked backend's peak memory grows with T."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from visiongates.ops.bigla import bigla_chunk, bigla_naive

from .timing import measure_one, peak_heap_bytes


def make_inputs(length: int, batch: int = 1, heads: int = 3, dim_k: int = 32, dim_v: int = 64, seed: int = 0,
                requires_grad: bool = False) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """q, k, v and ViG-like log-decays (logsigmoid(z) / 16) in fp32, [B, H, T, K|V]."""
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(batch, heads, length, dim_k, generator=gen) for _ in range(2))
    v = torch.randn(batch, heads, length, dim_v, generator=gen)
    gates = (F.logsigmoid(torch.randn(batch, heads, length, dim_k, generator=gen)) / 16 for _ in range(2))
    return tuple(t.requires_grad_(requires_grad) for t in (q, k, v, *gates))


def speed_rows(lengths: Sequence[int] = (196, 1024, 4096), reps: int = 5, **shape) -> list[dict]:
    """Forward latency (inference mode) of the naive recurrence and the chunked backend, per sequence length."""
    rows = []
    for length in lengths:
        inputs = make_inputs(length, **shape)
        with torch.inference_mode():
            chunk_ms = measure_one(lambda x=inputs: bigla_chunk(*x), reps=reps, warmup=2).best_ms
            naive_ms = measure_one(lambda x=inputs: bigla_naive(*x), reps=max(1, reps // 2), warmup=1).best_ms
        rows.append(dict(T=length, naive_ms=naive_ms, chunk_ms=chunk_ms, speedup=naive_ms / chunk_ms))
    return rows


def _forward(inputs):
    with torch.inference_mode():
        bigla_chunk(*inputs)


def _forward_backward(inputs):
    out = bigla_chunk(*inputs)
    torch.autograd.grad(out.square().sum(), inputs)


def memory_rows(lengths: Sequence[int] = (4096, 16384), **shape) -> list[dict]:
    """Peak heap growth (beyond the inputs) of the chunked backend, inference and forward + backward, per length,
    with the growth relative to the first length."""
    rows = []
    for length in lengths:
        inputs = make_inputs(length, requires_grad=True, **shape)
        infer = peak_heap_bytes(lambda x=inputs: _forward(x))
        train = peak_heap_bytes(lambda x=inputs: _forward_backward(x))
        rows.append(dict(T=length, forward_mb=infer / 2**20 if infer else None,
                         fwd_bwd_mb=train / 2**20 if train else None))  # fmt: skip
    for row in rows:
        for key in ("forward", "fwd_bwd"):
            first, this = rows[0][f"{key}_mb"], row[f"{key}_mb"]
            row[f"{key}_ratio"] = this / first if first and this else None
        row["length_ratio"] = row["T"] / rows[0]["T"]
    return rows
