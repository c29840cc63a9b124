"""What an exported model needs at inference, stored in the .onnx file's metadata_props (so the file is enough).

Keys are `visiongates.<field>`, values JSON (written by visiongates/export/onnx_export.py). onnxruntime reads
them without loading the graph (`InferenceSession.get_modelmeta().custom_metadata_map`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ExportError

PREFIX = "visiongates."
TASKS = ("classification", "restoration", "segmentation", "detection")


@dataclass
class ModelInfo:
    """Preprocessing and meaning of an exported model.

    task: 'classification' (logits [B, K]), 'restoration' (image [B, C, H, W] in [0, 1]), 'segmentation'
    (logits [B, K, H, W]) or 'detection' (raw head outputs, mm detectors). input_size: (C, H, W) the model was
    made for (classification crops to it). mean / std / crop_pct / interpolation: the evaluation transform (timm's
    protocol). labels: class names, may be empty. dynamic: which of 'batch', 'height', 'width' the graph leaves
    free; size_multiple: H, W granularity of the graph; pad: 'reflect' to reach it by reflect-padding whole images
    (and cropping the output), '' by resizing. model_name, source, seed, opset: provenance.
    """

    task: str
    model_name: str
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    labels: list[str] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=lambda: ["batch"])
    size_multiple: int = 1
    pad: str = ""
    source: str = ""
    seed: int | None = None
    opset: int | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ExportError(f"task must be one of {TASKS}, not '{self.task}'")
        self.input_size = tuple(int(v) for v in self.input_size)
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)

    @property
    def channels(self) -> int:
        return self.input_size[0]

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"class_{index}"

    def to_props(self) -> dict[str, str]:
        """metadata_props entries (string to string)."""
        return {PREFIX + key: json.dumps(value) for key, value in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> ModelInfo:
        """Parse metadata_props written by `to_props`; a file without them is an error that says so."""
        ours = {key[len(PREFIX) :]: value for key, value in props.items() if key.startswith(PREFIX)}
        if "task" not in ours:
            raise ExportError(
                f"{where} carries no visiongates metadata (task, input size, mean/std, labels): "
                "export it with export/export_onnx.py"
            )
        known = {f.name for f in fields(cls)}
        try:
            values: dict[str, Any] = {key: json.loads(value) for key, value in ours.items() if key in known}
        except json.JSONDecodeError as exc:
            raise ExportError(f"{where} has unreadable visiongates metadata ({exc})") from None
        return cls(**values)
