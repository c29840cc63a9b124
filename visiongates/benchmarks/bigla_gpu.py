"""BiGLA GPU benchmark: the "triton" and "cuda" backends beside "chunk" and fla's chunk_gla, against the roofline.

Shapes are ViG's (K = 32, V = 64, bf16, B = 128): ViG-T/S/B at T = 196 and ViG-T/S at T = 4096 (docs/bigla.md). The
bound is the minimum traffic (each input read once, each output written once) at the GPU's HBM bandwidth (3.0 TB/s
for the H100 of docs/bigla.md's table, 4.8 TB/s for an H200); "TB/s" is that minimum over the measured time. Times
are per call through the public op, medians of CUDA-event-timed blocks of back-to-back calls, rotating through enough
input copies that a small shape is not served from L2.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F

from visiongates.ops.bigla import bigla

from .timing import cuda_time_ms

K, V, BATCH = 32, 64, 128
HBM_BYTES_PER_S = 3.0e12  # docs/bigla.md's H100 figure (a device-to-device copy measures about that)
HBM_BY_DEVICE = {"H200": 4.8e12, "H100": 3.0e12}
SHAPES = [("ViG-T", 3, 196), ("ViG-S", 6, 196), ("ViG-B", 12, 196), ("ViG-T", 3, 4096), ("ViG-S", 6, 4096)]


def hbm_bytes_per_s() -> float:
    """The current GPU's HBM bandwidth where known (by name), else docs/bigla.md's H100 figure."""
    name = torch.cuda.get_device_name()
    return next((bw for key, bw in HBM_BY_DEVICE.items() if key in name), HBM_BYTES_PER_S)


def op_columns(backends: list[str]) -> list[tuple[str, str, str]]:
    columns = [("model", "shape", "s"), ("T", "T", "d")]
    for name in [*backends, "fla"]:
        columns += [(f"{name}_fwd_us", f"{name} fwd", ".1f"), (f"{name}_fb_us", f"{name} f+b", ".1f")]
    columns += [("bound_fwd_us", "bound fwd", ".1f"), ("bound_fb_us", "bound f+b", ".1f")]
    for name in backends[:1]:
        columns += [(f"{name}_fwd_tbps", f"{name} TB/s fwd", ".2f"), (f"{name}_fb_tbps", f"{name} TB/s f+b", ".2f"),
                    (f"{name}_fwd_roofline", f"{name} % roofline fwd", ".0%"),
                    (f"{name}_vs_fla_fb", f"fla / {name} f+b", ".2f")]  # fmt: skip
    return [*columns, *[(f"{name}_diff", f"{name} vs chunk", ".1e") for name in backends]]


def min_bytes(heads: int, length: int, backward: bool, batch: int = BATCH, elem: int = 2) -> int:
    """Minimum bytes moved: forward (4K + 2V) elements per token and head (q, k, v, two gates in; o out); with
    `backward` also the backward's (8K + 3V) (q, k, v, two gates and dO in; five gradients out)."""
    per_token = 4 * K + 2 * V + ((8 * K + 3 * V) if backward else 0)
    return batch * heads * length * per_token * elem


def bound_us(heads: int, length: int, backward: bool, bytes_per_s: float = HBM_BYTES_PER_S) -> float:
    return min_bytes(heads, length, backward) / bytes_per_s * 1e6


def make_sets(heads: int, length: int, copies: int, seed: int = 0) -> list[list[torch.Tensor]]:
    """`copies` input sets [q, k, v, g_fwd, g_bwd] in bigla's layout [B, H, T, D], bf16, ViG-like log-decays."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    sets = []
    for _ in range(copies):
        q, k = (torch.randn(BATCH, heads, length, K, device="cuda", generator=gen) for _ in range(2))
        v = torch.randn(BATCH, heads, length, V, device="cuda", generator=gen)
        gates = [F.logsigmoid(2 * torch.randn(BATCH, heads, length, K, device="cuda", generator=gen)) / 16
                 for _ in range(2)]  # fmt: skip
        sets.append([t.bfloat16() for t in (q, k, v, *gates)])
    return sets


def fla_both_directions() -> Callable | None:
    """fla's chunk_gla for both directions (two calls, the second on time-reversed inputs; fla's [B, T, H, D]
    layout), averaged as BiGLA's output; None where fla (PyPI fla-core) is not importable."""
    try:
        from fla.ops.gla import chunk_gla
    except ImportError:
        return None
    layout = {"head_first": False} if "head_first" in inspect.signature(chunk_gla).parameters else {}

    def run(q, k, v, g_fwd, g_bwd, scale):
        o_fwd, _ = chunk_gla(q, k, v, g_fwd, scale=scale, **layout)
        o_bwd, _ = chunk_gla(q.flip(1), k.flip(1), v.flip(1), g_bwd.flip(1), scale=scale, **layout)
        return (o_fwd + o_bwd.flip(1)) * 0.5

    return run


def time_op(op: Callable, sets: list[list[torch.Tensor]], repeats: int) -> tuple[float, float]:
    """(forward, forward + backward) microseconds of op(q, k, v, g_fwd, g_bwd) over the rotating input sets."""
    grads = [torch.randn_like(s[2]) for s in sets]
    leaves = [[t.detach().requires_grad_() for t in s] for s in sets]

    def fwd(i):
        with torch.no_grad():
            op(*sets[i % len(sets)])

    def fwd_bwd(i):
        torch.autograd.grad(op(*leaves[i % len(sets)]), leaves[i % len(sets)], grads[i % len(sets)])

    return cuda_time_ms(fwd, repeats) * 1e3, cuda_time_ms(fwd_bwd, repeats) * 1e3


def op_rows(backends: list[str], repeats: int = 30, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """One row per shape: times of each backend, "chunk" and fla (None when absent), bounds, bandwidth of the first
    backend, and each backend's largest difference from "chunk" (relative to the output's largest magnitude).
    `on_row` gets each row as soon as it is measured (a run cut short keeps what it measured)."""
    fla = fla_both_directions()
    bandwidth = hbm_bytes_per_s()
    rows = []
    for name, heads, length in SHAPES:
        copies = max(1, min(4, -(-150_000_000 // min_bytes(heads, length, False))))  # > 150 MB in rotation
        sets = make_sets(heads, length, copies)
        reference = bigla(*sets[0], backend="chunk").float()
        row = {"model": name, "T": length}
        for backend in [*backends, "chunk"]:
            if backend != "chunk":
                ours = bigla(*sets[0], backend=backend).float()
                row[f"{backend}_diff"] = ((ours - reference).abs().max() / reference.abs().max()).item()
            op = lambda *x, b=backend: bigla(*x, backend=b)  # noqa: E731
            row[f"{backend}_fwd_us"], row[f"{backend}_fb_us"] = time_op(op, sets, repeats)
        if fla is not None:
            fla_sets = [[t.transpose(1, 2).contiguous() for t in s] for s in sets]
            row["fla_fwd_us"], row["fla_fb_us"] = time_op(lambda *x: fla(*x, K**-0.5), fla_sets, repeats)
        first = backends[0]
        for key, backward in (("fwd", False), ("fb", True)):
            row[f"bound_{key}_us"] = bound_us(heads, length, backward, bandwidth)
            row[f"{first}_{key}_tbps"] = min_bytes(heads, length, backward) / (row[f"{first}_{key}_us"] * 1e-6) / 1e12
        row[f"{first}_fwd_roofline"] = row["bound_fwd_us"] / row[f"{first}_fwd_us"]
        if fla is not None:
            row[f"{first}_vs_fla_fb"] = row["fla_fb_us"] / row[f"{first}_fb_us"]
        rows.append(row)
        if on_row is not None:
            on_row(row)
        del sets
        torch.cuda.empty_cache()
    return rows


def train_step_ms(backend: str, batch: int = 128, repeats: int = 10) -> float:
    """One ViG-S training step at 224 x 224 (bf16 autocast forward, backward, AdamW step), ms (median)."""
    import timm

    model = timm.create_model("vig_gla_small", num_classes=1000, bigla_backend=backend).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, 224, 224, device="cuda")
    labels = torch.randint(0, 1000, (batch,), device="cuda")

    def step(_):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return cuda_time_ms(step, repeats, warmup=3)
