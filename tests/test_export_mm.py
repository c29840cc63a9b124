"""Whole mmdet / mmseg models from configs/det and configs/seg to ONNX: a RetinaNet's raw head outputs and an
EncoderDecoder's logits, compared with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from visiongates.export.mm import export_mm  # noqa: E402
from visiongates.export.ort_inference import OnnxModel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_retinanet_raw_head_outputs(tmp_path):
    report = export_mm(REPO / "configs/det/retinanet_cbam_resnet18_fpn_coins.py", tmp_path / "det.onnx", img_size=96)
    assert report.output_names == [f"cls_score_{i}" for i in range(5)] + [f"bbox_pred_{i}" for i in range(5)]
    assert report.parity <= 1e-4
    model = OnnxModel(report.path)
    assert model.info.task == "detection" and model.info.labels == ["coin"]
    assert model.info.mean == pytest.approx((0.485, 0.456, 0.406), abs=1e-3)
    outputs = model.session.run(None, {"image": np.zeros((3, 3, 96, 96), np.float32)})
    assert [o.shape[0] for o in outputs] == [3] * 10  # batch is dynamic
    assert outputs[0].shape[-2:] == (12, 12)  # P3 at stride 8


def test_upernet_logits(tmp_path):
    report = export_mm(REPO / "configs/seg/upernet_cbam_resnet18_coins.py", tmp_path / "seg.onnx")
    assert report.output_names == ["logits"] and report.parity <= 1e-4
    model = OnnxModel(report.path)
    assert model.info.task == "segmentation" and model.info.labels == ["background", "coin"]
    assert model.info.input_size == (3, 128, 128)
    logits = model(np.zeros((1, 3, 128, 128), np.float32))
    assert logits.shape == (1, 2, 128, 128)
