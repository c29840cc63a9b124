"""The BiGLA "triton" backend: a state kernel and chunk-parallel tensor-core kernels (kernels.py, docs/bigla.md).

forward: the state kernel (backward scan), then the forward kernel's walk (factorised, carrying the forward scan's
state) and its exact pass; backward: the state kernel with
its gradient walk, then the dq / dk / dg and dv kernels' two passes each, and the sum of dq's and dk's two fp32
halves (one per scan).

Importing this module registers the backend and imports nothing heavy; triton and the kernels are imported on first
use. CUDA tensors run the compiled kernels. CPU tensors run the same kernels in Triton's interpreter when
TRITON_INTERPRET=1 was set before the first use (how the test suite executes them without a GPU), and are refused
otherwise. Inputs the kernels were not built and tested for (head dims outside `HEAD_DIMS`, fp64, T = 0) go to the
"chunk" backend, with one warning per case.

Precision (see kernels.py): fp32 inputs take 3xTF32 dots (about fp32; exact fp32 in the interpreter); fp16 / bf16
q, k, v (gates in their dtype or fp32) round the dot operands to that dtype and accumulate in fp32; cumulative gates
and exponents are fp32, states fp32 in registers. Under the interpreter, half-precision dots run as exact fp32
products of operands rounded to nearest even (ROUND_DOTS), which is what a tensor core computes (the interpreter's
own bf16 dot multiplies bit patterns wrongly, triton issue 11584, and its bf16 cast truncates).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor

from ..chunk import bigla_chunk
from ..registry import register_backend, warn_once

__all__ = [
    "BLOCK_T",
    "FACTORISE_LIMIT",
    "HEAD_DIMS",
    "backward",
    "forward",
    "interpreting",
    "is_available",
    "launch_config",
    "residual_buffers",
]

# tokens per chunk (the intra-chunk products are [BT, BT] tensor-core tiles): fp16 / bf16 dots, and fp32 ones, whose
# 3xTF32 splitting needs three times the registers (the largest chunks that compile without spills, aot.py)
BLOCK_T = {"half": 32, "fp32": 16}
HEAD_DIMS = {"K": (16, 32, 64), "V": (32, 64, 128)}  # what the kernels are compiled and tested for
# Largest total log2-decay of a chunk (per channel) for the factorised intra-chunk product: its factors reach
# 2^limit, within range for fp32 / bf16 operands at 48 and for fp16 (max 65504 = 2^16) at 8; past it, the exact tree.
FACTORISE_LIMIT = {torch.float32: 48.0, torch.bfloat16: 48.0, torch.float16: 8.0}
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@functools.cache
def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def is_available() -> bool:
    """triton imports and there is a device to run on: a CUDA GPU, or the interpreter."""
    return _triton_importable() and (torch.cuda.is_available() or interpreting())


@functools.cache
def _kernels() -> ModuleType:
    from . import kernels

    return kernels


def launch_config(kernel: str, dot_fp32: bool) -> dict[str, int]:
    """num_warps / num_stages that compile without register spills for ViG's head dims (checked by aot.py): 8 warps
    spread the chunk kernels' [BT, BT] tiles over enough registers; the forward kernel, which walks the chunks,
    issues a quarter fewer instructions per token with 4 (the state kernel's gradient walk spills with 4; see
    docs/bigla.md). No software pipelining."""
    return {"num_warps": 4 if kernel == "bigla_fwd_kernel" else 8, "num_stages": 1}


@dataclass(frozen=True)
class DotMode:
    """How the kernels' dots run: exact fp32 (3xTF32 on a GPU), or on operands rounded to a half dtype, natively
    (GPU) or as exact fp32 products of the rounded operands (`round_dots`, the interpreter: what a tensor core
    computes, which the interpreter's own bf16 dot does not; triton issue 11584)."""

    dot_fp32: bool
    dtype: torch.dtype  # the operands' dtype, also the dtype the chunk states are stored in
    round_dots: bool

    def constants(self) -> dict[str, object]:
        import triton.language as tl

        dot_dtype = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[self.dtype]
        return {"DOT_FP32": self.dot_fp32, "DOT_DTYPE": dot_dtype, "ROUND_DOTS": self.round_dots}


def dot_mode(*tensors: Tensor) -> DotMode:
    """Exact fp32 dots unless q, k, v share a half dtype (the gates may be fp32: ViG's training mix)."""
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) == 1 and (dtype := dtypes.pop()) in (torch.float16, torch.bfloat16):
        return DotMode(False, dtype, interpreting())
    return DotMode(True, torch.float32, False)


def _runs_here(q, k, v, g_fwd, g_bwd) -> bool:
    """Whether the kernels take these inputs; otherwise the caller hands them to 'chunk' (after one warning)."""
    if q.device.type == "cpu" and not interpreting():
        raise ValueError("the 'triton' BiGLA backend runs on CPU tensors only in Triton's interpreter "
                         "(set TRITON_INTERPRET=1 before the first call); use backend='chunk' on CPU")  # fmt: skip
    K, V = q.shape[-1], v.shape[-1]
    if K not in HEAD_DIMS["K"] or V not in HEAD_DIMS["V"]:
        warn_once(f"BiGLA triton kernels take K in {HEAD_DIMS['K']} and V in {HEAD_DIMS['V']}, not K={K}, V={V}: "
                  "using 'chunk'", stacklevel=4)  # fmt: skip
        return False
    dtypes = {t.dtype for t in (q, k, v, g_fwd, g_bwd)}
    if not dtypes <= set(KERNEL_DTYPES):
        warn_once(
            f"BiGLA triton kernels take fp32 / fp16 / bf16, not {sorted(map(str, dtypes))}: using 'chunk'", stacklevel=4
        )
        return False
    return q.shape[-2] > 0


def _unit_stride(t: Tensor) -> Tensor:
    """The kernels take any batch, head and time strides but need unit stride along the feature axis."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(*tensors: Tensor) -> list[int]:
    return [s for t in tensors for s in t.stride()[:3]]


def _launch(kernel: str, grid: tuple[int, ...], mode: DotMode, *args, **constants) -> None:
    getattr(_kernels(), kernel)[grid](*args, **constants, **mode.constants(), **launch_config(kernel, mode.dot_fp32))


def chunk_constants(mode: DotMode) -> dict[str, int]:
    """The chunk size BT of a dot mode and its log2."""
    size = BLOCK_T["fp32" if mode.dot_fp32 else "half"]
    return {"BT": size, "LOG2_BT": size.bit_length() - 1}


def residual_buffers(q, k, v, g_fwd, g_bwd) -> list[Tensor]:
    """What the forward leaves for the backward: both scans' chunk start states h [B * H, 2, num_chunks, K, V] (in
    the dots' operand dtype) and the chunks whose span passes the factorisation limit, flags [B * H, 2, num_chunks]
    (int8). Allocated with `new_empty`, so the op's fake implementation allocates the same."""
    mode = dot_mode(q, k, v)
    batch, heads, length, dim_k = q.shape
    num_chunks = -(-length // chunk_constants(mode)["BT"])
    h = q.new_empty(batch * heads, 2, num_chunks, dim_k, v.shape[-1], dtype=mode.dtype)
    return [h, q.new_empty(batch * heads, 2, num_chunks, dtype=torch.int8)]


def forward(q, k, v, g_fwd, g_bwd, scale: float, residuals: list[Tensor] | None = None) -> Tensor:
    """o = scale / 2 * (forward scan + backward scan), [B, H, T, V] in v's dtype (see visiongates.ops.bigla); with
    `residuals` (`residual_buffers`), also fills them for `backward`."""
    if not _runs_here(q, k, v, g_fwd, g_bwd):
        return bigla_chunk(q, k, v, g_fwd, g_bwd, scale)
    inputs = [_unit_stride(t) for t in (q, k, v, g_fwd, g_bwd)]
    batch, heads, length, dim_k = q.shape
    dim_v = v.shape[-1]
    mode = dot_mode(q, k, v)
    h, flags = residuals if residuals is not None else residual_buffers(*inputs)
    constants = {"LIMIT": FACTORISE_LIMIT[mode.dtype], "K": dim_k, "V": dim_v}
    # the backward scan's states, then a walk over each sequence's chunks carrying the forward scan's, then the
    # flagged chunks again (a program each, most return at once)
    _launch("bigla_state_kernel", (batch * heads, 1), mode, *inputs, v, h, h, h, flags, *_strides(*inputs, v),
            length, heads, 0.5 * scale, WITH_GRAD=False, BT=chunk_constants(mode)["BT"], **constants)  # fmt: skip
    out = torch.empty(batch, heads, length, dim_v, dtype=v.dtype, device=v.device)
    for exact, grid in ((False, (batch * heads,)), (True, (batch * heads, h.shape[2]))):
        _launch(
            "bigla_fwd_kernel", grid, mode,
            *inputs, h, flags, out, *_strides(*inputs), length, heads, 0.5 * scale,
            EXACT=exact, SAVE_STATES=residuals is not None, **constants, **chunk_constants(mode),
        )  # fmt: skip
    return out


def backward(grad_out, q, k, v, g_fwd, g_bwd, scale: float, residuals: list[Tensor]):
    """(dq, dk, dv, dg_fwd, dg_bwd), each in its input's dtype; `residuals` as `forward` filled them."""
    if not _runs_here(q, k, v, g_fwd, g_bwd):
        _, pullback = torch.func.vjp(lambda *x: bigla_chunk(*x, scale), q, k, v, g_fwd, g_bwd)
        return pullback(grad_out.to(v.dtype))
    inputs = [_unit_stride(t) for t in (q, k, v, g_fwd, g_bwd, grad_out)]
    batch, heads, length, dim_k = q.shape
    dim_v = v.shape[-1]
    mode = dot_mode(q, k, v)
    h, flags = residuals
    # the gradient each chunk's end state gets from the chunks after it, and the gate gradient past each chunk
    dh = torch.empty_like(h)
    beyond = torch.empty(h.shape[:-1], dtype=torch.float32, device=q.device)
    constants = {"K": dim_k, "V": dim_v, **chunk_constants(mode)}
    _launch("bigla_state_kernel", (batch * heads, 2), mode, *inputs, h, dh, beyond, flags, *_strides(*inputs),
            length, heads, 0.5 * scale, WITH_GRAD=True, LIMIT=FACTORISE_LIMIT[mode.dtype], K=dim_k, V=dim_v,
            BT=constants["BT"])  # fmt: skip
    dv, dg_fwd, dg_bwd = (torch.empty(batch, heads, length, t.shape[-1], dtype=t.dtype, device=q.device)
                          for t in (v, g_fwd, g_bwd))  # fmt: skip
    dq2, dk2 = (torch.empty(2, batch, heads, length, dim_k, dtype=torch.float32, device=q.device) for _ in range(2))
    q_, k_, _, gf_, gb_, do_ = inputs
    for exact in (False, True):
        _launch("bigla_bwd_dqk_kernel", (batch * heads, h.shape[2], 2), mode, *inputs, h, dh, beyond, flags, dq2,
                dk2, dg_fwd, dg_bwd, *_strides(*inputs), length, heads, 0.5 * scale, EXACT=exact,
                **constants)  # fmt: skip
        _launch("bigla_bwd_dv_kernel", (batch * heads, h.shape[2]), mode, q_, k_, gf_, gb_, do_, dh, flags, dv,
                *_strides(q_, k_, gf_, gb_, do_), length, heads, 0.5 * scale, EXACT=exact, **constants)  # fmt: skip
    return dq2.sum(0).to(q.dtype), dk2.sum(0).to(k.dtype), dv, dg_fwd, dg_bwd


register_backend(
    "triton", forward, backward, device_types=("cuda", "cpu"), is_available=is_available, residuals=residual_buffers
)
