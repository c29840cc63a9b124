"""The registry of BiGLA backends: each backend module registers itself here when imported (naive.py, chunk.py,
triton/, cuda/); `dispatch.py` chooses among them. Nothing here imports a backend, so no backend imports back into a
half-initialised package."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Backend", "available_backends", "register_backend", "warn_once"]

Grads = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]
ForwardFn = Callable[..., Tensor]  # (q, k, v, g_fwd, g_bwd, scale[, residuals]) -> o
BackwardFn = Callable[..., Grads]  # (grad_o, q, k, v, g_fwd, g_bwd, scale[, residuals]) -> (dq, dk, dv, dg_fwd, dg_bwd)
ResidualsFn = Callable[..., list[Tensor]]  # (q, k, v, g_fwd, g_bwd) -> empty buffers


@dataclass(frozen=True)
class Backend:
    """One BiGLA implementation. `backward=None`: gradients by torch.func.vjp through `forward`. `residuals`: the
    buffers a forward that a backward follows fills (`forward(..., residuals=buffers)`) and that backward reads
    (`backward(..., residuals=buffers)`); None: the backward takes the inputs only."""

    name: str
    forward: ForwardFn
    backward: BackwardFn | None = None
    device_types: tuple[str, ...] = ("cpu", "cuda")
    is_available: Callable[[], bool] = lambda: True
    residuals: ResidualsFn | None = None


_BACKENDS: dict[str, Backend] = {}


def register_backend(
    name: str,
    forward: ForwardFn,
    backward: BackwardFn | None = None,
    device_types: tuple[str, ...] = ("cpu", "cuda"),
    is_available: Callable[[], bool] = lambda: True,
    residuals: ResidualsFn | None = None,
) -> None:
    """Register (or replace) a BiGLA backend under `name`; `forward(q, k, v, g_fwd, g_bwd, scale)` -> o."""
    _BACKENDS[name] = Backend(name, forward, backward, tuple(device_types), is_available, residuals)


def available_backends(device_type: str | None = None) -> list[str]:
    """Names of the registered backends (those that run on `device_type`, if given)."""
    return [
        name
        for name, b in _BACKENDS.items()
        if device_type is None or (device_type in b.device_types and b.is_available())
    ]


@functools.cache
def warn_once(message: str, stacklevel: int = 3) -> None:
    """Warn with `message` the first time only (a backend handing inputs it cannot take to "chunk" says so once)."""
    warnings.warn(message, stacklevel=stacklevel)
