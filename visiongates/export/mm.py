"""ONNX export of whole mmdetection / mmsegmentation models built from configs/det and configs/seg.

- detection (single-stage, e.g. RetinaNet): the raw head outputs, `cls_score_<level>` then `bbox_pred_<level>`;
  anchors, decoding and NMS stay outside the graph (mmdet's `bbox_head.predict_by_feat` does them).
- segmentation (mmseg `EncoderDecoder`): the decode head's logits, bilinearly resized to the input size.

The data preprocessor's normalisation stays outside the graph; its mean / std (divided by 255, as for our own
models) and the class names go to the metadata. Needs mmdet / mmseg (imported here only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

from .families import DEFAULT_OPSET, ExportSpec
from .metadata import ModelInfo
from .onnx_export import export_image_model, quiet_exporter, resolve_opset
from .runtime import open_session


class DetectorHeadOutputs(nn.Module):
    """A single-stage mmdet detector up to its raw head outputs, flattened into one tuple (scores, then boxes)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cls_scores, bbox_preds = self.detector._forward(image)[:2]
        return (*cls_scores, *bbox_preds)


class SegmentorLogits(nn.Module):
    """An mmseg EncoderDecoder to per-pixel logits at the input's size (its `_forward`, then the resize mmseg's
    `postprocess_result` applies)."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.segmentor._forward(image)
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=self.segmentor.align_corners)


@dataclass
class MMExportReport:
    path: Path
    info: ModelInfo
    output_names: list[str]
    seconds: float
    parity: float


def build_mm_model(config: str | Path, checkpoint: str | Path | None = None) -> tuple[nn.Module, str, ModelInfo]:
    """The graph-exportable wrapper of a det/seg config's model (weights from `checkpoint` if given), its scope
    ('mmdet' / 'mmseg') and its metadata (input size from the preprocessor's fixed size, or 128 px; class names
    from the checkpoint, else the test dataset's config or class)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import visiongates.mm  # noqa: F401  (registers VGBackbone & co. in both registries)

    cfg = Config.fromfile(str(config))
    scope = cfg.get("default_scope", "mmdet")
    init_default_scope(scope)
    if scope == "mmseg":
        from mmseg.registry import DATASETS, MODELS
    else:
        from mmdet.registry import DATASETS, MODELS
    model = MODELS.build(cfg.model)
    meta = {}
    if checkpoint is not None:
        meta = load_checkpoint(model, str(checkpoint), map_location="cpu").get("meta", {}).get("dataset_meta") or {}
    model.eval()
    pre = cfg.model.get("data_preprocessor") or {}
    size = tuple(pre.get("size") or (128, 128))
    dataset = cfg.get("test_dataloader", {}).get("dataset", {})
    classes = (
        meta.get("classes")
        or (dataset.get("metainfo") or {}).get("classes")
        or getattr(DATASETS.get(dataset.get("type", "")), "METAINFO", {}).get("classes", ())
    )
    info = ModelInfo(
        task="detection" if scope == "mmdet" else "segmentation",
        model_name=Path(config).stem,
        input_size=(3, *size),
        mean=tuple(m / 255 for m in pre.get("mean", (0, 0, 0))),
        std=tuple(s / 255 for s in pre.get("std", (255, 255, 255))),
        labels=[str(c) for c in classes],
        source=str(checkpoint or config),
    )
    wrapper = DetectorHeadOutputs(model) if scope == "mmdet" else SegmentorLogits(model)
    return wrapper.eval(), scope, info


def export_mm(
    config: str | Path,
    output: str | Path,
    checkpoint: str | Path | None = None,
    img_size: int | None = None,
    opset: int = DEFAULT_OPSET,
) -> MMExportReport:
    """Export a det/seg config's model (batch dynamic, size fixed) and compare every output with onnxruntime."""
    model, scope, info = build_mm_model(config, checkpoint)
    opset = resolve_opset(info.model_name, ExportSpec(), opset)
    if img_size is not None:
        info.input_size = (3, img_size, img_size)
    torch.manual_seed(0)
    x = torch.randn(2, *info.input_size)
    with torch.inference_mode():
        expected = model(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    levels = len(expected) // 2
    names = (
        [f"cls_score_{i}" for i in range(levels)] + [f"bbox_pred_{i}" for i in range(levels)]
        if scope == "mmdet"
        else ["logits"]
    )
    info.dynamic, info.opset = ["batch"], opset
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    program = export_image_model(model, x, opset, {"image": {0: Dim("batch", min=1, max=1024)}}, names)
    program.model.metadata_props.update(info.to_props())
    with quiet_exporter():
        program.save(output)
    seconds = time.perf_counter() - start
    got = open_session(output).run(None, {"image": x.numpy()})
    parity = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))
    return MMExportReport(output, info, names, seconds, parity)
