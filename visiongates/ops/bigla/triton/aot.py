"""Ahead-of-time compilation of the BiGLA Triton kernels for sm_80 / sm_90, no GPU needed.

`triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))` lowers each kernel variant to PTX and runs the
bundled ptxas to a cubin; ptxas's own report (`-v`, which Triton passes) gives registers, spill bytes and shared
memory. `compile_table()` does this for every kernel x dtype x head dims x architecture and `check()` fails on any
spill or on shared memory above what one block may use on that architecture.

    python -m visiongates.ops.bigla.triton.aot          # prints the table; exit status 1 if a variant fails

Run it in a process without TRITON_INTERPRET=1: under the interpreter, triton's own library functions are decorated
for the interpreter when triton is imported and can no longer be compiled.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import re
import sys
from dataclasses import dataclass

import torch

VIG_HEAD_DIMS = ((32, 64), (16, 32))  # (K, V) of plain ViG and of ViG-H
ARCHS = (80, 90)
CHUNK_KERNELS = ("bigla_fwd_kernel", "bigla_bwd_dqk_kernel", "bigla_bwd_dv_kernel")
# every kernel as launched: the state kernel (the forward's state walk; "[grad]": the backward's gradient walk), each
# chunk kernel's factorised pass ("bigla_fwd_kernel[save]": the forward walk that stores every state for a backward)
# and its exact pass ("[exact]")
KERNELS = (
    "bigla_state_kernel",
    "bigla_state_kernel[grad]",
    *CHUNK_KERNELS,
    "bigla_fwd_kernel[save]",
    *(f"{name}[exact]" for name in CHUNK_KERNELS),
)
VARIANTS = ("", "exact", "grad", "save")
# dtype variants: q, k, v (and o, dO, dq, dk, dv) / gates (and their gradients); "bf16+fp32g" is ViG's training mix
DTYPES = {"fp32": ("fp32", "fp32"), "fp16": ("fp16", "fp16"), "bf16": ("bf16", "bf16"), "bf16+fp32g": ("bf16", "fp32")}
# Spill bytes (stores + loads) a variant may have. Every kernel on the path a trained ViG takes (the state kernel and
# the factorised passes) has none; the exact pass of dq / dk, which only chunks whose total decay passes the
# factorisation limit take, spills at K = 32 (56-168 B for half precision, 320 / 412 B for fp32 on sm_80 / sm_90
# under triton 3.8) for every chunk size and warp count tried (docs/bigla.md): allowed up to this bound, which still
# fails on any growth past it.
SPILL_ALLOWANCE = {"bigla_bwd_dqk_kernel[exact]": 448}
# largest shared memory one block may opt into (bytes): A100 (sm_80) 163 KiB, H100 / H200 (sm_90) 227 KiB
SMEM_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
_DATA = ("q", "k", "v", "do", "o", "dq", "dk", "dv")
_GATES = ("g_fwd", "g_bwd", "dg_fwd", "dg_bwd")
_STATES = ("h", "dh")
_FP32 = ("beyond",)
_INT8 = ("flags",)
_FP32_SCRATCH = ("dq", "dk")
_CONSTEXPRS = (
    "K", "V", "BT", "LOG2_BT", "LIMIT", "EXACT", "WITH_GRAD", "SAVE_STATES", "DOT_FP32", "DOT_DTYPE", "ROUND_DOTS",
)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    kernel: str
    dtype: str
    K: int
    V: int
    arch: int
    registers: int
    spill_stores: int
    spill_loads: int
    shared: int  # bytes: Triton's dynamic shared memory plus ptxas's static shared memory
    num_warps: int

    @property
    def ok(self) -> bool:
        spills = self.spill_stores + self.spill_loads
        return spills <= SPILL_ALLOWANCE.get(self.kernel, 0) and self.shared <= SMEM_LIMIT[self.arch]


def _signature(fn, dtype: str) -> dict[str, str]:
    data, gates = DTYPES[dtype]
    state = "fp32" if data == "fp32" else data  # states travel in the dots' operand dtype
    signature = {}
    for name in fn.arg_names:
        if name in _FP32_SCRATCH and fn.__name__ == "bigla_bwd_dqk_kernel":
            signature[name] = "*fp32"
        elif name in _DATA:
            signature[name] = f"*{data}"
        elif name in _GATES:
            signature[name] = f"*{gates}"
        elif name in _STATES:
            signature[name] = f"*{state}"
        elif name in _FP32:
            signature[name] = "*fp32"
        elif name in _INT8:
            signature[name] = "*i8"
        elif name == "half_scale":
            signature[name] = "fp32"
        elif name in _CONSTEXPRS:
            signature[name] = "constexpr"
        else:
            signature[name] = "i32"
    return signature


def _ptxas_report(log: str) -> tuple[int, int, int, int]:
    """(registers, spill store bytes, spill load bytes, static smem bytes) from ptxas -v output."""

    def number(pattern: str) -> int:
        found = re.search(pattern, log)
        return int(found.group(1)) if found else 0

    registers = number(r"Used (\d+) registers")
    if not registers:
        raise RuntimeError(f"no register count in the ptxas report:\n{log}")
    spills = number(r"(\d+) bytes spill stores"), number(r"(\d+) bytes spill loads")
    return registers, *spills, number(r"(\d+) bytes smem")


def compile_kernel(kernel: str, dtype: str, K: int, V: int, arch: int, variant: str = ""):
    """(triton's compiled kernel, ptxas -v log) of one variant for `arch` (80 or 90): `variant` "exact" picks a
    chunk kernel's exact pass (the tree) instead of the factorised one, "grad" the state kernel's gradient walk
    instead of the forward's state walk, "save" the forward walk that stores every state for a backward."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import FACTORISE_LIMIT, DotMode, chunk_constants, interpreting, launch_config
    from . import kernels as kernel_module

    if interpreting():  # triton's own library functions were then decorated for the interpreter at import
        raise RuntimeError("compile the kernels in a process without TRITON_INTERPRET=1 (e.g. run this module)")
    jit_fn = getattr(kernel_module, kernel)
    data = DTYPES[dtype][0]
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[data]
    mode = DotMode(data == "fp32", torch_dtype, False)
    constants = {"K": K, "V": V, **mode.constants()}
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
    if kernel == "bigla_state_kernel":
        constants.update(BT=chunk_constants(mode)["BT"], WITH_GRAD=variant == "grad")
    else:
        constants.update(chunk_constants(mode), EXACT=variant == "exact")
    if "LIMIT" in jit_fn.arg_names:
        constants["LIMIT"] = FACTORISE_LIMIT[torch_dtype]
    if "SAVE_STATES" in jit_fn.arg_names:
        constants["SAVE_STATES"] = variant == "save"
    source = ASTSource(
        fn=jit_fn,
        signature=_signature(jit_fn, dtype),
        constexprs={(jit_fn.arg_names.index(name),): value for name, value in constants.items()},
    )
    options = launch_config(kernel, mode.dot_fp32)
    log = io.StringIO()
    with contextlib.redirect_stdout(log), triton.knobs.nvidia.scope(), triton.knobs.compilation.scope():
        triton.knobs.nvidia.dump_ptxas_log = True  # print ptxas -v
        triton.knobs.compilation.always_compile = True  # a cached kernel would skip ptxas and its report
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    return compiled, log.getvalue()


def compile_variant(kernel: str, dtype: str, K: int, V: int, arch: int) -> Variant:
    """Compile one kernel variant for `arch` (80 or 90) and read its resource use; "NAME[VARIANT]" names a variant
    (`compile_kernel`)."""
    from . import launch_config

    name, _, variant = kernel.removesuffix("]").partition("[")
    compiled, log = compile_kernel(name, dtype, K, V, arch, variant)
    registers, spill_stores, spill_loads, static_smem = _ptxas_report(log)
    shared = compiled.metadata.shared + static_smem
    num_warps = launch_config(name, DTYPES[dtype][0] == "fp32")["num_warps"]
    return Variant(kernel, dtype, K, V, arch, registers, spill_stores, spill_loads, shared, num_warps)


def compile_table(
    kernels: tuple[str, ...] = KERNELS,
    dtypes: tuple[str, ...] = tuple(DTYPES),
    head_dims: tuple[tuple[int, int], ...] = VIG_HEAD_DIMS,
    archs: tuple[int, ...] = ARCHS,
) -> list[Variant]:
    return [
        compile_variant(kernel, dtype, K, V, arch)
        for kernel in kernels
        for dtype in dtypes
        for K, V in head_dims
        for arch in archs
    ]


def format_table(variants: list[Variant]) -> str:
    """The variants as a Markdown table (visiongates.benchmarks.table), with whether each fits its allowances."""
    from visiongates.benchmarks.table import markdown_table

    rows = [{**dataclasses.asdict(v), "arch": f"sm_{v.arch}", "ok": "yes" if v.ok else "NO"} for v in variants]
    columns = [
        "kernel",
        "dtype",
        "K",
        "V",
        "arch",
        ("num_warps", "warps", ""),
        "registers",
        ("spill_stores", "spill stores (B)", ""),
        ("spill_loads", "spill loads (B)", ""),
        ("shared", "shared (B)", ""),
        "ok",
    ]
    return markdown_table(rows, columns)


def check(variants: list[Variant]) -> list[str]:
    """One message per variant that spills (past SPILL_ALLOWANCE) or needs more shared memory than its architecture
    allows."""
    return [
        f"{v.kernel} {v.dtype} K={v.K} V={v.V} sm_{v.arch}: {v.spill_stores + v.spill_loads} spill bytes, "
        f"{v.shared} B shared (limit {SMEM_LIMIT[v.arch]})"
        for v in variants
        if not v.ok
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile the BiGLA Triton kernels for sm_80 / sm_90 (no GPU needed).")
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=KERNELS)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--json", action="store_true", help="print the variants as JSON instead of the table")
    args = parser.parse_args(argv)
    variants = compile_table(kernels=tuple(args.kernels), dtypes=tuple(args.dtypes))
    if args.json:
        print(json.dumps([dataclasses.asdict(v) for v in variants]))
    else:
        print(format_table(variants))
    failures = check(variants)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
