"""Dynamic int8 quantization with onnxruntime.quantization, and what it costs in accuracy and gains in speed.

Dynamic quantization stores weights as int8 and quantizes activations on the fly (no calibration data).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from visiongates.data import ImageFolderDataset

from .benchmark import onnx_ms
from .ort_inference import OnnxModel


def quantize_int8(
    source: str | Path, output: str | Path, op_types: Sequence[str] | None = None, per_channel: bool = False
) -> Path:
    """Write a dynamically int8-quantized copy of `source` (metadata kept). op_types: which ONNX ops to quantize
    (default: onnxruntime's choice, Conv and MatMul included)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(prepared, output, op_types_to_quantize=list(op_types) if op_types else None,
                         per_channel=per_channel, weight_type=QuantType.QInt8)
    quantized, original = onnx.load(str(output)), onnx.load(str(source), load_external_data=False)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    onnx.save(quantized, str(output))
    return output


def folder_top1(model: OnnxModel, root: str | Path, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class indices of every image of an ImageFolder split (classes as the model's labels)."""
    dataset = ImageFolderDataset(root, classes=model.info.labels or None)
    files = dataset.samples
    predicted = np.concatenate([
        model(model.preprocess(files[i:i + batch_size])).argmax(-1) for i in range(0, len(files), batch_size)
    ])
    return predicted, np.asarray(dataset.targets)


def compare_int8(
    fp32: str | Path, int8: str | Path, root: str | Path, warmup: int = 3, runs: int = 30
) -> dict[str, Any]:
    """Top-1 of the fp32 and int8 models on an ImageFolder split, how many predictions changed, their batch-1
    latencies in onnxruntime and the speed-up, and the file sizes."""
    models = {"fp32": OnnxModel(fp32), "int8": OnnxModel(int8)}
    result: dict[str, Any] = {}
    predictions = {}
    for key, model in models.items():
        predicted, targets = folder_top1(model, root)
        predictions[key] = predicted
        result[f"{key}_top1"] = float((predicted == targets).mean() * 100)
        result["images"] = len(targets)
    x = np.random.default_rng(0).standard_normal((1, *models["fp32"].info.input_size)).astype(np.float32)
    for key, path in (("fp32", fp32), ("int8", int8)):
        result[f"{key}_ms"] = onnx_ms(path, x, warmup, runs)
        result[f"{key}_mb"] = Path(path).stat().st_size / 2**20
    result["top1_change"] = result["int8_top1"] - result["fp32_top1"]
    result["predictions_changed"] = int((predictions["fp32"] != predictions["int8"]).sum())
    result["speedup"] = result["fp32_ms"] / result["int8_ms"]
    return result
