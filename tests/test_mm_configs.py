"""Every config in configs/det and configs/seg builds, trains one iteration and runs inference on CPU.

The COCO / ADE20K configs are pointed at tiny sets written in those folder layouts; images are shrunk to 64 px.
"""

from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from mm_smoke import shrink_config, tiny_sets  # noqa: E402

from visiongates.mm.finetune import build_runner, load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for task in ("det", "seg") for p in (REPO / "configs" / task).glob("*.py"))


def test_every_zoo_family_has_det_and_seg_configs():
    names = [p.name for p in CONFIGS]
    for backbone in ("cbam_resnet50", "das_resnet50", "vig_gla_h_tiny", "gpsa_convit_small_sfp"):
        for arch in ("retinanet", "mask_rcnn", "upernet", "fpn"):
            assert any(n.startswith(f"{arch}_{backbone}") for n in names), (arch, backbone)
    assert any(n.startswith("attention_unet_cbam_resnet") for n in names)
    assert any(n.startswith("attention_unet_vig_gla_h") for n in names)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return tiny_sets(tmp_path_factory.mktemp("tiny_sets"))


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_trains_one_iteration_and_predicts(config, roots, tmp_path):
    cfg = shrink_config(load_config(config), roots, tmp_path / "work")
    runner = build_runner(cfg)
    runner.train()  # one iteration, then the validation pass (inference + metric)
    assert runner.iter == 1
    model = runner.model.eval()
    batch = next(iter(runner.val_dataloader))
    with torch.no_grad():
        (sample,) = model.test_step(batch)
    if cfg.default_scope == "mmdet":
        boxes = sample.pred_instances.bboxes
        assert boxes.ndim == 2 and boxes.shape[-1] == 4
        if "mask_rcnn" in config.name:
            assert "masks" in sample.pred_instances
    else:
        assert sample.pred_sem_seg.data.shape[-2:] == tuple(sample.ori_shape)
