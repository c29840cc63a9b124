"""Tiny exported models for the runtime and fault tests: a classifier, a segmentation and a restoration graph,
each with visiongates metadata (`export_tiny_models`; tests get them through the `tiny_models` fixture)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


class TinyClassifier(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)
        )


class TinyDense(nn.Module):
    """Per-pixel output through a stride-2 bottleneck (so sizes must be even multiples), `out` channels."""

    def __init__(self, out: int, sigmoid: bool = False):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, out, 2, stride=2)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(torch.relu(self.down(x)))
        return torch.sigmoid(y) if self.sigmoid else y


def export_tiny_models(out: Path) -> dict[str, Path]:
    """A classifier, a segmentation model and a restoration model, exported to `out` with visiongates metadata."""
    from visiongates.export import ExportSpec, ModelInfo, export_onnx

    torch.manual_seed(0)
    models = {
        "classification": (
            TinyClassifier(),
            ModelInfo(
                "classification",
                "tiny_cnn",
                (3, 32, 32),
                crop_pct=0.875,
                labels=["ant", "bee", "cat", "dog"],
                **IMAGENET,
            ),
            None,
        ),
        "segmentation": (
            TinyDense(3),
            ModelInfo("segmentation", "tiny_seg", (3, 32, 32), labels=["a", "b", "c"], **IMAGENET),
            ExportSpec(size_multiple=32),
        ),
        "restoration": (
            TinyDense(3, sigmoid=True),
            ModelInfo("restoration", "tiny_restore", (3, 32, 32), mean=(0.0,) * 3, std=(1.0,) * 3),
            ExportSpec(size_multiple=16, pad="reflect", min_size=16),
        ),
    }
    return {
        task: export_onnx(model.eval(), info, out / f"{task}.onnx", spec=spec).path
        for task, (model, info, spec) in models.items()
    }
