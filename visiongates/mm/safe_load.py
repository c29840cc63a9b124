"""Read mmengine's own checkpoints (Runner resume, `load_from`, `Pretrained` init) with torch's safe loader.

mmengine 0.10.7 calls `torch.load` without `weights_only`; since torch 2.6 that means weights_only=True, and its
checkpoints hold the message hub's `HistoryBuffer`s (numpy arrays, and the buffer's statistics methods, which pickle
as `getattr(HistoryBuffer, 'mean')`) and numpy scalars, which the allow-list refuses. We replace mmengine's loader
for local files with one that calls `torch.load(..., weights_only=True)` and allows exactly those classes for the
duration of that call (`torch.serialization.safe_globals`), not process-wide. Arbitrary classes in a pickle are
still refused; TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is never set.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch


def mmengine_checkpoint_globals() -> list:
    """What an mmengine / mmdet / mmseg training checkpoint pickles besides tensors and builtins."""
    from mmengine.logging import HistoryBuffer

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = {type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "uint8", "bool")}
    return [HistoryBuffer, getattr, _reconstruct, scalar, np.ndarray, np.dtype, *sorted(dtypes, key=str)]


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local files, reading with weights_only=True and mmengine's classes allowed."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
        return torch.load(filename, map_location=map_location, weights_only=True)


def install_safe_checkpoint_loader() -> None:
    """Make mmengine read local checkpoints through `load_local_checkpoint` (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
