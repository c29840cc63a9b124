"""Bidirectional gated linear attention (BiGLA), the token mixer of ViG (Liao et al. 2024, eq. 4-6; docs/bigla.md).

    from visiongates.ops.bigla import bigla
    o = bigla(q, k, v, g_fwd, g_bwd, scale=None, backend="auto")

Backends: "naive" (the recurrence, the test oracle), "chunk" (chunked parallel PyTorch, any device, the export
form), "triton" (fused Triton kernels for CUDA tensors; on CPU tensors under TRITON_INTERPRET=1), "cuda" (C++
kernels, opt-in only). Each backend registers itself in `registry.py` from its own module when imported;
`dispatch.py` holds the custom op and the choice of backend.
"""

from __future__ import annotations

import importlib
import warnings

from .chunk import bigla_chunk
from .dispatch import AUTO_ORDER, bigla, resolve
from .naive import bigla_naive
from .registry import Backend, available_backends, register_backend

__all__ = [
    "AUTO_ORDER", "Backend", "available_backends", "bigla", "bigla_chunk", "bigla_naive", "register_backend", "resolve",
]  # fmt: skip

for _name in ("triton", "cuda"):  # each registers itself when imported; importing must stay cheap (nothing built)
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except (ImportError, OSError, RuntimeError) as _err:  # a broken optional backend must not break the package
        warnings.warn(f"BiGLA {_name!r} backend not loaded ({_err}); CUDA tensors use 'chunk'", stacklevel=2)
