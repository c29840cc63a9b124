"""onnxruntime sessions on CPU: one place that opens a .onnx file, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from .errors import ExportError
from .metadata import ModelInfo


def open_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU InferenceSession with full graph optimisation; `threads`: intra-op threads (None: onnxruntime's
    default, one per physical core)."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"'{path}' is a folder, not an ONNX file")
    if not path.is_file():
        raise ExportError(f"ONNX file '{path}' does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types (InvalidProtobuf, Fail, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"'{path}' is not a loadable ONNX model ({first[:200]})") from None


def session_info(session: ort.InferenceSession, where: str = "model") -> ModelInfo:
    """The visiongates metadata stored in the session's model."""
    return ModelInfo.from_props(session.get_modelmeta().custom_metadata_map, where)
