"""onnxruntime sessions on CPU (the runtime's `open_session`), with torch's thread count as the default so the two
frameworks are compared on equal terms."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import torch
from visiongates_runtime import session as _session
from visiongates_runtime.session import session_info  # noqa: F401


def open_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU InferenceSession with full graph optimisation; `threads` defaults to torch's intra-op thread count."""
    return _session.open_session(path, threads or torch.get_num_threads())
