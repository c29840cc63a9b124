"""The BiGLA "triton" backend: one fused forward and one fused backward Triton kernel (kernels.py).

Importing this module registers the backend and imports nothing heavy; triton and the kernels are imported on first
use. CUDA tensors run the compiled kernels. CPU tensors run the same kernels in Triton's interpreter when
TRITON_INTERPRET=1 was set before the first use (how the test suite executes them without a GPU), and are refused
otherwise. Inputs the kernels were not built and tested for (head dims outside `HEAD_DIMS`, fp64, T = 0) go to the
"chunk" backend, with one warning per case.

Precision (see kernels.py): fp32 inputs take exact fp32 dots (no TF32); fp16 / bf16 inputs round the dot operands
to their dtype and accumulate in fp32; cumulative gates, exponents and states are always fp32. Under the
interpreter bf16 dots run in fp32 (the interpreter multiplies bf16 bit patterns wrongly: triton issue 11584).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from types import ModuleType

import torch

from ..chunk import bigla_chunk
from ..dispatch import register_backend

__all__ = ["BLOCK_T", "HEAD_DIMS", "backward", "forward", "interpreting", "is_available", "launch_config"]

BLOCK_T = 16  # tokens per chunk: the smallest tl.dot tile; the exact intra-chunk weights are [BLOCK_T, BLOCK_T, K]
HEAD_DIMS = {"K": (16, 32, 64), "V": (32, 64, 128)}  # what the kernels are compiled and tested for
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=4)


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
    (4 spill in the bf16 forward on sm_90 and in every backward), and no software pipelining of the fp32 backward's
    loads (its 3xTF32 dots leave no registers for prefetched tiles)."""
    stages = 1 if kernel == "bigla_bwd_kernel" and dot_fp32 else 3
    return {"num_warps": 8, "num_stages": stages}


def _dot_mode(*tensors: torch.Tensor) -> tuple[bool, object]:
    """(DOT_FP32, DOT_DTYPE): exact fp32 dots unless q, k, v share a half dtype (bf16 in fp32 under the interpreter)."""
    import triton.language as tl

    dtypes = {t.dtype for t in tensors}
    if dtypes == {torch.float16}:
        return False, tl.float16
    if dtypes == {torch.bfloat16} and not interpreting():
        return False, tl.bfloat16
    return True, tl.float32


def _runs_here(q, k, v, g_fwd, g_bwd) -> bool:
    """Whether the kernels take these inputs; otherwise the caller hands them to 'chunk' (after one warning)."""
    if q.device.type == "cpu" and not interpreting():
        raise ValueError("the 'triton' BiGLA backend runs on CPU tensors only in Triton's interpreter "
                         "(set TRITON_INTERPRET=1 before the first call); use backend='chunk' on CPU")  # fmt: skip
    K, V = q.shape[-1], v.shape[-1]
    if K not in HEAD_DIMS["K"] or V not in HEAD_DIMS["V"]:
        _warn_once(f"BiGLA triton kernels take K in {HEAD_DIMS['K']} and V in {HEAD_DIMS['V']}, not K={K}, V={V}: "
                   "using 'chunk'")  # fmt: skip
        return False
    dtypes = {t.dtype for t in (q, k, v, g_fwd, g_bwd)}
    if not dtypes <= set(KERNEL_DTYPES):
        _warn_once(f"BiGLA triton kernels take fp32 / fp16 / bf16, not {sorted(map(str, dtypes))}: using 'chunk'")
        return False
    return q.shape[-2] > 0


def _unit_stride(t: torch.Tensor) -> torch.Tensor:
    """The kernels take any batch, head and time strides but need unit stride along the feature axis."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(*tensors: torch.Tensor) -> list[int]:
    return [s for t in tensors for s in t.stride()[:3]]


def forward(q, k, v, g_fwd, g_bwd, scale: float) -> torch.Tensor:
    """o = scale / 2 * (forward scan + backward scan), [B, H, T, V] in v's dtype (see visiongates.ops.bigla)."""
    if not _runs_here(q, k, v, g_fwd, g_bwd):
        return bigla_chunk(q, k, v, g_fwd, g_bwd, scale)
    inputs = [_unit_stride(t) for t in (q, k, v, g_fwd, g_bwd)]
    batch, heads, length, dim_k = q.shape
    dim_v = v.shape[-1]
    out = torch.empty(batch, heads, length, dim_v, dtype=v.dtype, device=v.device)
    dot_fp32, dot_dtype = _dot_mode(q, k, v)
    config = launch_config("bigla_fwd_kernel", dot_fp32)
    _kernels().bigla_fwd_kernel[(batch * heads,)](
        *inputs, out, *_strides(*inputs), length, heads, 0.5 * scale,
        K=dim_k, V=dim_v, BT=BLOCK_T, DOT_FP32=dot_fp32, DOT_DTYPE=dot_dtype, **config,
    )  # fmt: skip
    return out


def backward(grad_out, q, k, v, g_fwd, g_bwd, scale: float):
    """(dq, dk, dv, dg_fwd, dg_bwd), each in its input's dtype; computed in fp32 buffers."""
    if not _runs_here(q, k, v, g_fwd, g_bwd):
        _, pullback = torch.func.vjp(lambda *x: bigla_chunk(*x, scale), q, k, v, g_fwd, g_bwd)
        return pullback(grad_out.to(v.dtype))
    inputs = [_unit_stride(t) for t in (q, k, v, g_fwd, g_bwd, grad_out)]
    batch, heads, length, dim_k = q.shape
    dim_v = v.shape[-1]
    fp32 = dict(dtype=torch.float32, device=q.device)
    dq, dk = torch.empty(batch, heads, length, dim_k, **fp32), torch.empty(batch, heads, length, dim_k, **fp32)
    dv = torch.empty(batch, heads, length, dim_v, **fp32)
    dg_fwd, dg_bwd = torch.empty(batch, heads, length, dim_k, **fp32), torch.empty(batch, heads, length, dim_k, **fp32)
    dot_fp32, dot_dtype = _dot_mode(q, k, v)
    config = launch_config("bigla_bwd_kernel", dot_fp32)
    _kernels().bigla_bwd_kernel[(batch * heads,)](
        *inputs, dq, dk, dv, dg_fwd, dg_bwd, *_strides(*inputs), length, heads, 0.5 * scale,
        K=dim_k, V=dim_v, BT=BLOCK_T, DOT_FP32=dot_fp32, DOT_DTYPE=dot_dtype, **config,
    )  # fmt: skip
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dg_fwd.to(g_fwd.dtype), dg_bwd.to(g_bwd.dtype)


register_backend("triton", forward, backward, device_types=("cuda", "cpu"), is_available=is_available)
