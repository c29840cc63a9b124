"""The BiGLA "cuda" backend: fused CUDA kernels for the forward and the backward (csrc/, see csrc/bigla.h).

Importing this module only registers the backend with `visiongates.ops.bigla`; the extension is compiled (or loaded
from its cache, see `build.py`) the first time a CUDA tensor asks for it by name (`backend="cuda"`: "auto" never
picks these kernels, which have not run on a GPU yet; `tools/gpu_check.sh` is the check they must pass first).
If that fails, one warning says why and CUDA tensors use the "chunk" backend. The kernels take q, k, v of one dtype
(fp32, bf16 or fp16; mixed ones run in fp32) with log-decays in that dtype or in fp32 (as ViG computes them), and the
head dims of `head_dims()`; anything else (fp64, other head dims, too little shared memory) is handed to the "chunk"
backend, with one warning per case.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch
from torch import Tensor

from ..chunk import bigla_chunk
from ..registry import register_backend, warn_once

__all__ = ["backward", "extension", "forward", "head_dims", "is_available"]

KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@functools.cache
def extension() -> ModuleType | None:
    """The compiled extension, or None (after one warning) when there is no GPU or it cannot be built or loaded."""
    if not torch.cuda.is_available():
        return None
    try:
        from . import build

        return build.build(build.device_archs())
    except Exception as err:  # any build or load failure means: fall back
        warn_once(
            f"BiGLA CUDA kernels could not be built or loaded ({type(err).__name__}: {err}); "
            "CUDA tensors use the 'chunk' backend"
        )
        return None


def is_available() -> bool:
    return extension() is not None


@functools.cache
def head_dims() -> dict[tuple[int, int], tuple[int, int]]:
    """{(K, V): (forward, backward) shared-memory bytes per block} for the compiled kernels (empty without them)."""
    ext = extension()
    return {} if ext is None else {(k, v): (fwd, bwd) for k, v, _, fwd, bwd in ext.head_dims()}


@functools.cache
def _smem_limit(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).shared_memory_per_block_optin


def _kernel_dtypes(q, k, v, g_fwd, g_bwd) -> tuple[torch.dtype, torch.dtype] | None:
    """(dtype of q, k, v; dtype of the log-decays) the kernels run in, or None: these inputs go to 'chunk'."""
    if q.device.type != "cuda" or extension() is None:
        return None
    dtypes = {t.dtype for t in (q, k, v, g_fwd, g_bwd)}
    if not dtypes <= set(KERNEL_DTYPES):
        warn_once(
            f"BiGLA CUDA kernels take {[str(d) for d in KERNEL_DTYPES]}, not {sorted(map(str, dtypes))}: using 'chunk'"
        )
        return None
    dims = (q.shape[-1], v.shape[-1])
    smem = head_dims().get(dims)
    if smem is None:
        warn_once(
            f"BiGLA CUDA kernels are compiled for head dims (K, V) in {sorted(head_dims())}, not {dims}: using 'chunk'"
        )
        return None
    if max(smem) > _smem_limit(q.device.index or 0):
        warn_once(
            f"BiGLA CUDA kernels for head dims {dims} need {max(smem)} bytes of shared memory per block, "
            "more than this GPU has: using 'chunk'"
        )
        return None
    qkv = {q.dtype, k.dtype, v.dtype}
    dtype = qkv.pop() if len(qkv) == 1 else torch.float32
    same_gates = g_fwd.dtype == g_bwd.dtype and g_fwd.dtype in (dtype, torch.float32)
    return dtype, g_fwd.dtype if same_gates else torch.float32


def _prepare(t: Tensor, dtype: torch.dtype) -> Tensor:
    t = t.to(dtype).contiguous()
    return t if t.data_ptr() % 16 == 0 else t.clone()  # 16-byte vector loads


def _kernel_inputs(dtypes, q, k, v, g_fwd, g_bwd) -> list[Tensor]:
    dtype, gate_dtype = dtypes
    return [_prepare(t, dtype) for t in (q, k, v)] + [_prepare(t, gate_dtype) for t in (g_fwd, g_bwd)]


def forward(q, k, v, g_fwd, g_bwd, scale: float) -> Tensor:
    """o = scale / 2 * (forward scan + backward scan), in v's dtype (see visiongates.ops.bigla)."""
    dtypes = _kernel_dtypes(q, k, v, g_fwd, g_bwd)
    if dtypes is None:
        return bigla_chunk(q, k, v, g_fwd, g_bwd, scale)
    out = extension().forward(*_kernel_inputs(dtypes, q, k, v, g_fwd, g_bwd), float(scale))
    return out.to(v.dtype)


def backward(grad_out, q, k, v, g_fwd, g_bwd, scale: float):
    """(dq, dk, dv, dg_fwd, dg_bwd), each in its input's dtype."""
    inputs = (q, k, v, g_fwd, g_bwd)
    dtypes = _kernel_dtypes(*inputs)
    if dtypes is None:
        _, pullback = torch.func.vjp(lambda *x: bigla_chunk(*x, scale), *inputs)
        return pullback(grad_out.to(v.dtype))
    grad_out = _prepare(grad_out, dtypes[0])
    grads = extension().backward(grad_out, *_kernel_inputs(dtypes, *inputs), float(scale))
    return tuple(g.to(t.dtype) for g, t in zip(grads, inputs))


register_backend("cuda", forward, backward, device_types=("cuda",), is_available=is_available)
