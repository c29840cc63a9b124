"""BiGLA op benchmark (CPU): chunked vs naive speed, how the chunked backend's peak memory grows with T, and the
export path in onnxruntime per pair-weight chunk size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from visiongates.ops.bigla import bigla_chunk, bigla_naive
from visiongates.ops.bigla.chunk import bigla_traceable

from .timing import measure, measure_one, peak_heap_bytes


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


class _Traceable(torch.nn.Module):
    """The op's export path (`chunk.bigla_traceable`) with a given pair-weight chunk, as a module to export."""

    def __init__(self, chunk_size: int) -> None:
        super().__init__()
        self.chunk_size = chunk_size

    def forward(self, q, k, v, g_fwd, g_bwd):
        return bigla_traceable(q, k, v, g_fwd, g_bwd, chunk_size=self.chunk_size)


def export_rows(chunk_sizes: Sequence[int] = (16, 32), lengths: Sequence[int] = (196, 784, 3136), reps: int = 5,
                **shape) -> list[dict]:  # fmt: skip
    """onnxruntime latency (one thread) of the exported op, one file per pair-weight chunk size with a symbolic T,
    per length; the files run in turn (`timing.measure`), so their ratio holds on a busy machine."""
    import tempfile

    import onnxruntime as ort

    names = ["q", "k", "v", "g_fwd", "g_bwd"]
    sessions = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in chunk_sizes:
            path = f"{folder}/bigla_c{size}.onnx"
            length = torch.export.Dim("T", min=2, max=65536)
            torch.onnx.export(_Traceable(size), make_inputs(lengths[0], **shape), path, input_names=names,
                              dynamo=True, dynamic_shapes={n: {2: length} for n in names})  # fmt: skip
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            sessions[size] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    rows = []
    for length in lengths:
        feed = {n: t.numpy() for n, t in zip(names, make_inputs(length, **shape))}
        timings = measure({c: lambda s=s, f=feed: s.run(None, f) for c, s in sessions.items()}, reps)
        rows.append({"T": length, **{f"c{size}_ms": timings[size].best_ms for size in chunk_sizes}})
    return rows
