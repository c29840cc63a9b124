"""int8 quantization with onnxruntime.quantization, and what it costs in accuracy and gains in speed.

- dynamic: weights stored as int8, activations quantized on the fly (no calibration data). onnxruntime's advice
  for transformers (MatMul-heavy graphs); on CNNs it is slower than fp32 (it cannot fuse Conv).
- static: weights int8 per output channel, activation ranges calibrated on images, written as QDQ pairs that
  onnxruntime fuses into integer Conv / MatMul kernels. onnxruntime's advice for CNNs. The calibration images go
  through the preprocessing stored in the model's metadata (the runtime's, as inference will see them).
- auto: static for convolutional families, dynamic for transformer families (`choose_method`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from visiongates_runtime.cli import expand_inputs
from visiongates_runtime.model import Model
from visiongates_runtime.session import open_session

from visiongates.benchmarks.timing import measure
from visiongates.data import ImageFolderDataset
from visiongates.errors import DataError, ExportError

from . import runtime
from .ort_inference import OnnxModel

log = logging.getLogger(__name__)

METHODS = ("auto", "static", "dynamic")
CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
# model-name patterns (the `model_name` in the metadata); a segmentation model is named attention_unet[<encoder>]
CONVOLUTIONAL = ("cbam_resnet*", "das_resnet*", "seresnet*", "resnet*", "attention_unet*", "maxim_*")
TRANSFORMER = ("gpsa_convit_*", "vig_gla_*", "msvit_*", "vit_*", "deit_*", "convit_*")


def choose_method(model_name: str, graph: onnx.ModelProto | None = None) -> tuple[str, str]:
    """('static' | 'dynamic', why): static for convolutional families, dynamic for transformer families; a model
    outside both lists by its graph (static if it holds more Conv than MatMul/Gemm nodes)."""
    if any(fnmatch.fnmatchcase(model_name, p) for p in CONVOLUTIONAL):
        return "static", f"'{model_name}' is a convolutional family"
    if any(fnmatch.fnmatchcase(model_name, p) for p in TRANSFORMER):
        return "dynamic", f"'{model_name}' is a transformer family"
    if graph is None:
        return "dynamic", f"'{model_name}' is not a known family"
    ops = [node.op_type for node in graph.graph.node]
    convs, matmuls = ops.count("Conv"), ops.count("MatMul") + ops.count("Gemm")
    method = "static" if convs > matmuls else "dynamic"
    return method, f"'{model_name}' has {convs} Conv and {matmuls} MatMul/Gemm nodes"


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """Hide onnxruntime's quantization chatter (pre-processing hints and per-node INFO/WARNING lines of the Python
    tool, and the C++ warnings of its calibration sessions) while keeping errors."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        logger.setLevel(level)
        ort.set_default_logger_severity(2)


class FolderCalibrationReader(CalibrationDataReader):
    """Calibration batches from image files (a folder, searched recursively; at most `max_images`, evenly spread over
    the sorted list), each preprocessed as the model's metadata prescribes (`visiongates_runtime.Model`, so exactly
    what inference feeds it). Unreadable files are skipped with a warning and counted (`skipped`)."""

    def __init__(
        self, model_path: str | Path, images: str | Path | None, max_images: int = 100, batch_size: int = 1
    ) -> None:
        model = Model(model_path, threads=1)
        self.input_name = model.input_name
        self.batches: list[np.ndarray] = []
        kept = []
        self.skipped = 0
        if images is None:  # latency benchmarks of untrained models: random N(0, 1) inputs at the export size
            rng = np.random.default_rng(0)
            kept = [rng.standard_normal(model.info.input_size).astype(np.float32) for _ in range(max_images)]
        files = expand_inputs([str(images)]) if images is not None else []
        if len(files) > max_images:  # spread over the (sorted) folder, so every class folder contributes
            files = [files[int(i)] for i in np.linspace(0, len(files) - 1, max_images).round()]
        for path in files:
            try:
                kept.append(model.model_input(model.read(path))[0])
            except DataError as exc:
                log.warning("calibration: skipping %s", exc)
                self.skipped += 1
        shapes = {x.shape for x in kept}
        if not kept:
            raise DataError(f"no readable calibration image in '{images}'")
        if len(shapes) > 1:  # dense models see each image at its own size: calibrate one at a time
            batch_size = 1
        self.batches = [np.stack(kept[i : i + batch_size]) for i in range(0, len(kept), batch_size)]
        self.count = len(kept)
        self._iter = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._iter = iter(self.batches)


def _copy_metadata(source: str | Path, output: Path) -> None:
    quantized, original = onnx.load(str(output)), onnx.load(str(source), load_external_data=False)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    onnx.save(quantized, str(output))


def quantize_int8(
    source: str | Path, output: str | Path, op_types: Sequence[str] | None = None, per_channel: bool = False
) -> Path:
    """Write a dynamically int8-quantized copy of `source` (metadata kept). op_types: which ONNX ops to quantize
    (default: onnxruntime's choice, Conv and MatMul included)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, quiet_onnxruntime():
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            prepared,
            output,
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
        )
    _copy_metadata(source, output)
    return output


def quantize_static_int8(
    source: str | Path,
    output: str | Path,
    calibration: str | Path | None,
    calibrate_method: str = "minmax",
    max_images: int = 100,
    op_types: Sequence[str] | None = None,
) -> tuple[Path, int, int]:
    """Write a statically int8-quantized copy of `source` (QDQ, per-channel symmetric int8 weights, uint8
    activations with ranges calibrated on up to `max_images` files under `calibration`, or on random inputs if it is
    None, which suits latency measurements only; metadata kept).
    calibrate_method: 'minmax', 'entropy' or 'percentile' (99.999th). Returns (path, images calibrated on,
    unreadable images skipped)."""
    if calibrate_method not in CALIBRATION_METHODS:
        raise DataError(f"calibration method must be one of {sorted(CALIBRATION_METHODS)}, not '{calibrate_method}'")
    output = Path(output).resolve()  # before the chdir below
    output.parent.mkdir(parents=True, exist_ok=True)
    reader = FolderCalibrationReader(source, calibration, max_images)
    with tempfile.TemporaryDirectory() as tmp, quiet_onnxruntime():
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        cwd = os.getcwd()
        os.chdir(tmp)  # the calibrator writes its augmented model into the working directory
        try:
            quantize_static(
                prepared,
                output,
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(op_types) if op_types else None,
                calibrate_method=CALIBRATION_METHODS[calibrate_method],
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        finally:
            os.chdir(cwd)
    _copy_metadata(source, output)
    return output, reader.count, reader.skipped


def quantize(
    source: str | Path,
    output: str | Path,
    method: str = "auto",
    calibration: str | Path | None = None,
    calibrate_method: str = "minmax",
    max_images: int = 100,
    op_types: Sequence[str] | None = None,
    per_channel: bool = False,
) -> dict[str, Any]:
    """int8 copy of `source` by `method` ('auto' picks by family, see `choose_method`); static needs
    `calibration` (an image folder). Returns {'path', 'method', 'why', 'calibration_images', 'calibration_skipped'}.
    A missing or unloadable `source` (a folder, a .pth) is an ExportError naming it, before anything is written."""
    if method not in METHODS:
        raise DataError(f"--method must be one of {METHODS}, not '{method}'")
    open_session(source, threads=1)
    why = f"--method {method}"
    if method == "auto":
        info = Model(source, threads=1).info
        method, why = choose_method(info.model_name, onnx.load(str(source), load_external_data=False))
    if method == "static":
        if calibration is None:
            raise DataError(f"static quantization needs calibration images (--calibration DIR); {why}")
        path, count, skipped = quantize_static_int8(source, output, calibration, calibrate_method, max_images, op_types)
        return {
            "path": path,
            "method": "static",
            "why": why,
            "calibration_images": count,
            "calibration_skipped": skipped,
        }
    path = quantize_int8(source, output, op_types=op_types, per_channel=per_channel)
    return {"path": path, "method": "dynamic", "why": why, "calibration_images": 0, "calibration_skipped": 0}


def folder_top1(model: OnnxModel, root: str | Path, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Predicted and true class indices of every readable image of an ImageFolder split (classes as the model's
    labels), and the unreadable files skipped (each with a warning, as training and evaluation skip them)."""
    dataset = ImageFolderDataset(root, classes=model.info.labels or None)
    results = model.predict(dataset.samples, topk=1, batch_size=batch_size)
    skipped = [r.path for r in results if not r.ok]
    for r in results:
        if not r.ok:
            log.warning("skipping unreadable image %s", r.error)
    if len(skipped) == len(results):
        raise DataError(f"no readable image in '{root}'")
    kept = [(r.top1, t) for r, t in zip(results, dataset.targets) if r.ok]
    return np.asarray([p for p, _ in kept]), np.asarray([t for _, t in kept]), skipped


# the table of a `compare_int8` result (plus its quantization method) that export/*.py print
INT8_COLUMNS = (
    ("method", "images", "skipped", "fp32_top1", "int8_top1", "top1_change", "predictions_changed")  # accuracy
    + ("fp32_ms", "int8_ms", "speedup", "fp32_mb", "int8_mb")  # speed and size
)


def compare_int8(
    fp32: str | Path, int8: str | Path, root: str | Path, warmup: int = 3, runs: int = 30, threads: int | None = None
) -> dict[str, Any]:
    """Top-1 of the fp32 and int8 models on an ImageFolder split, how many predictions changed, their batch-1
    latencies in onnxruntime (`onnx_latency_ms`) and the speed-up, and the file sizes."""
    if not Path(root).is_dir():
        raise ExportError(f"'{root}' is not an ImageFolder split (root/<class>/<image>)")
    models = {"fp32": OnnxModel(fp32, threads), "int8": OnnxModel(int8, threads)}
    result: dict[str, Any] = {}
    predictions = {}
    for key, model in models.items():
        predicted, targets, skipped = folder_top1(model, root)
        predictions[key] = predicted
        result[f"{key}_top1"] = float((predicted == targets).mean() * 100)
        result["images"], result["skipped"] = len(targets), len(skipped)
    x = np.random.default_rng(0).standard_normal((1, *models["fp32"].info.input_size)).astype(np.float32)
    ms = onnx_latency_ms({"fp32": fp32, "int8": int8}, x, warmup, runs, threads)
    for key, path in (("fp32", fp32), ("int8", int8)):
        result[f"{key}_ms"] = ms[key]
        result[f"{key}_mb"] = Path(path).stat().st_size / 2**20
    result["top1_change"] = result["int8_top1"] - result["fp32_top1"]
    result["predictions_changed"] = int((predictions["fp32"] != predictions["int8"]).sum())
    result["speedup"] = result["fp32_ms"] / result["int8_ms"]
    return result


def onnx_latency_ms(
    paths: dict[str, str | Path], x: np.ndarray, warmup: int = 3, runs: int = 20, threads: int | None = None
) -> dict[str, float]:
    """Median onnxruntime latency (ms) of each .onnx file on input `x`, the files called in turn (`measure`); intra-op
    threads: `threads`, else torch's (as PyTorch is timed)."""
    feed = np.ascontiguousarray(x, dtype=np.float32)
    sessions = {key: runtime.open_session(path, threads) for key, path in paths.items()}
    calls = {key: (lambda s=s: s.run(None, {s.get_inputs()[0].name: feed})) for key, s in sessions.items()}
    return {key: timing.median_ms for key, timing in measure(calls, runs, warmup).items()}
