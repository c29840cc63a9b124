"""A static performance model of the BiGLA Triton kernels: what they cost per token and head, read off their sm_90
SASS without a GPU (docs/bigla.md, "A static performance model").

Each kernel is compiled ahead of time (`visiongates.ops.bigla.triton.aot`) and disassembled with the `nvdisasm`
that triton ships. Instructions are counted per class. The backward's chunk kernels run straight-line code per
program (their tree loops are unrolled), so a program issues its static count once per warp; the kernels that walk
the chunks (the state kernel, the forward kernel) run their loop bodies (found as backward branches) once per chunk.
Warp-instructions per token and head are then

    chunk kernels: instructions x warps / BT          walking kernels: sum of loop bodies x warps / BT

(the exact passes, which a trained ViG never takes, count only the flag check every program makes before it
returns). HBM bytes per token and head are counted by design from what each kernel reads and writes. The predicted
H100 time of a shape is max(issue time, memory time): issue time = warp-instructions / (4 per clock per SM x 132
SMs x 1.755 GHz), every instruction one issue slot (tensor-core instructions included); memory time = bytes /
3.0 TB/s (docs/bigla.md's figures).
"""

from __future__ import annotations

from . import fla_model
from .sass import CLASSES, Cost, Sass, disassemble

SMS, CLOCK_HZ, ISSUE_PER_CLOCK, HBM_BYTES_PER_S = 132, 1.755e9, 4, 3.0e12  # H100 SXM (docs/bigla.md)
SHAPES = (("ViG-S", 6, 196), ("ViG-T", 3, 4096))  # (model, heads, tokens) at B = 128, K = 32, V = 64


def _sass(kernel: str, dtype: str, K: int, V: int, variant: str = "") -> Sass:
    from visiongates.ops.bigla.triton import aot

    compiled, _ = aot.compile_kernel(kernel, dtype, K, V, 90, variant)
    return Sass.parse(disassemble(compiled.asm["cubin"]))


def kernel_costs(dtype: str = "bf16+fp32g", K: int = 32, V: int = 64) -> dict[str, Cost]:
    """{"forward", "backward", "forward + backward"}: the model's cost per token and head at ViG's head dims; the
    forward as in inference, forward + backward with the forward that stores the states the backward reads."""
    from visiongates.ops.bigla.triton import BLOCK_T, aot, launch_config

    data, gates = aot.DTYPES[dtype]
    element = {"fp32": 4, "fp16": 2, "bf16": 2}
    e, eg = element[data], element[gates]
    block = BLOCK_T["fp32" if data == "fp32" else "half"]
    state = K * V * e / block  # one chunk state per token (states travel in the dots' operand dtype)

    def per_token(kernel: str) -> float:  # a program's warp-instructions per token of its chunk
        return launch_config(kernel, data == "fp32")["num_warps"] / block

    def loops(sass: Sass) -> dict[str, int]:
        total = dict.fromkeys([*CLASSES, "other"], 0)
        for first, last in sass.loops:
            for name, count in sass.classes(first, last).items():
                total[name] += count
        return total

    forward = Cost()
    forward.add(loops(_sass("bigla_state_kernel", dtype, K, V)), per_token("bigla_state_kernel"))
    forward.add(loops(_sass("bigla_fwd_kernel", dtype, K, V)), per_token("bigla_fwd_kernel"))
    forward.add({"other": _sass("bigla_fwd_kernel", dtype, K, V, "exact").prologue()}, per_token("bigla_fwd_kernel"))
    # state kernel (the backward scan): k, v and its gates in, its states out; the walk: q, k, v, both gates and the
    # backward scan's states in, o out (the forward scan's state stays in registers)
    forward.bytes = (K + V) * e + K * eg + state + (2 * K + V) * e + 2 * K * eg + state + V * e

    # the forward a backward follows: the walk also stores every forward-scan state
    saving = Cost(bytes=forward.bytes + state)
    saving.add(loops(_sass("bigla_state_kernel", dtype, K, V)), per_token("bigla_state_kernel"))
    saving.add(loops(_sass("bigla_fwd_kernel", dtype, K, V, "save")), per_token("bigla_fwd_kernel"))
    saving.add({"other": _sass("bigla_fwd_kernel", dtype, K, V, "exact").prologue()}, per_token("bigla_fwd_kernel"))

    backward = Cost()
    backward.add(loops(_sass("bigla_state_kernel", dtype, K, V, "grad")), per_token("bigla_state_kernel"))
    for kernel in ("bigla_bwd_dqk_kernel", "bigla_bwd_dv_kernel"):
        backward.add(_sass(kernel, dtype, K, V).classes(), per_token(kernel))
        backward.add({"other": _sass(kernel, dtype, K, V, "exact").prologue()}, per_token(kernel))
    # state kernel: q, dO, gates, h in; dh, beyond out
    backward.bytes = (
        2 * ((K + V) * e + K * eg) + 2 * state + 2 * state + 2 * K * 4 / block
        + 2 * ((2 * K + 2 * V) * e + K * eg + 2 * state + 2 * K * 4 + K * eg)  # dq / dk per scan; fp32 halves, dg
        + (2 * K + V) * e + 2 * K * eg + 2 * state + V * e  # dv: q, k, dO, gates, dh in; dv out
        + 2 * 2 * K * 4 + 2 * K * e  # the caller's sum of the fp32 halves of dq and dk
    )  # fmt: skip
    return {"forward": forward, "backward": backward, "forward + backward": _both(saving, backward)}


def min_bytes(dtype: str = "bf16+fp32g", K: int = 32, V: int = 64, backward: bool = False) -> float:
    """Single-pass minimum per token and head: every input read once, every output written once."""
    from visiongates.ops.bigla.triton import aot

    data, gates = aot.DTYPES[dtype]
    e, eg = {"fp32": 4, "fp16": 2, "bf16": 2}[data], {"fp32": 4, "fp16": 2, "bf16": 2}[gates]
    forward = (2 * K + V) * e + 2 * K * eg + V * e
    return forward + ((2 * K + 2 * V) * e + 2 * K * eg + (2 * K + V) * e + 2 * K * eg if backward else 0)


def predicted_us(cost: Cost, tokens: int) -> tuple[float, float]:
    """(issue time, memory time) in µs for `tokens` token-head pairs on an H100."""
    issue = cost.total * tokens / (ISSUE_PER_CLOCK * SMS * CLOCK_HZ) * 1e6
    return issue, cost.bytes * tokens / HBM_BYTES_PER_S * 1e6


def _both(forward: Cost, backward: Cost) -> Cost:
    both = Cost(bytes=forward.bytes + backward.bytes)
    both.add(forward.instructions, 1.0)
    both.add(backward.instructions, 1.0)
    return both


def fla_available() -> bool:
    try:
        import fla  # noqa: F401  (fla-core, requirements/dev.txt)
    except ImportError:
        return False
    return True


def model_rows(dtype: str = "bf16+fp32g", batch: int = 128, fla: bool = True) -> list[dict[str, object]]:
    """One row per (shape, pass): warp-instructions and bytes per token and head, and the predicted H100 time; with
    `fla` (and fla-core importable), the same for fla's chunk_gla run once per direction (`fla_model`), bf16 q, k, v
    with fp32 gates only."""
    from visiongates.ops.bigla.triton import BLOCK_T, aot

    costs = kernel_costs(dtype)
    with_fla = fla and fla_available() and dtype == "bf16+fp32g"
    rows = []
    for model, heads, length in SHAPES:
        block = BLOCK_T["fp32" if aot.DTYPES[dtype][0] == "fp32" else "half"]
        padded = -(-length // block) * block  # the last chunk is computed whole
        if with_fla:
            fla_costs = fla_model.chunk_gla_costs(batch, length, heads)
            fla_costs["forward + backward"] = _both(fla_costs["forward"], fla_costs["backward"])
        for name, cost in costs.items():
            issue, memory = predicted_us(cost, batch * heads * padded)
            minimum = min_bytes(dtype, backward=name != "forward") * batch * heads * length / HBM_BYTES_PER_S * 1e6
            row = {
                "shape": f"{model} T={length}", "pass": name, "warp_instr": cost.total,
                "mma": cost.instructions["mma"], "shfl": cost.instructions["shfl"], "mufu": cost.instructions["mufu"],
                "fp32": cost.instructions["fp32"], "ldst": cost.instructions["global"] + cost.instructions["shared"],
                "bytes": cost.bytes, "min_bytes": min_bytes(dtype, backward=name != "forward"),
                "issue_us": issue, "memory_us": memory, "predicted_us": max(issue, memory),
                "roofline": minimum / max(issue, memory),
                "fla_warp_instr": None, "fla_bytes": None, "fla_us": None, "fla_ratio": None,
            }  # fmt: skip
            if with_fla:
                fla_cost = fla_costs[name]
                fla_us = max(predicted_us(fla_cost, batch * heads * length))
                row.update(fla_warp_instr=fla_cost.total, fla_bytes=fla_cost.bytes, fla_us=fla_us)
                row["fla_ratio"] = fla_us / row["predicted_us"]
            rows.append(row)
    return rows


COLUMNS = [
    ("shape", "shape", "s"), ("pass", "pass", "s"), ("warp_instr", "warp-instr / token-head", ".0f"),
    ("mma", "MMA", ".1f"), ("shfl", "SHFL", ".1f"), ("mufu", "MUFU", ".1f"), ("fp32", "FP32 ALU", ".0f"),
    ("ldst", "LD/ST", ".0f"), ("bytes", "HBM B / token-head", ".0f"), ("min_bytes", "single-pass min B", ".0f"),
    ("issue_us", "issue µs", ".1f"), ("memory_us", "memory µs", ".1f"), ("predicted_us", "predicted µs", ".1f"),
    ("roofline", "of roofline", ".0%"), ("fla_warp_instr", "fla x2 warp-instr", ".0f"),
    ("fla_bytes", "fla x2 B", ".0f"), ("fla_us", "fla x2 predicted µs", ".1f"), ("fla_ratio", "fla x2 / ours", ".2f"),
]  # fmt: skip
