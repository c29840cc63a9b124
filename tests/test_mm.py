"""mmdet / mmseg adapters: the backbone wrapper, simple feature pyramid, layer decay, U-Net head, safe loading."""

from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch
from torch.nn.modules.batchnorm import _BatchNorm

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from visiongates.errors import CheckpointError  # noqa: E402
from visiongates.mm import AttentionUNetHead, SimpleFeaturePyramid, VGBackbone  # noqa: E402


def test_import_visiongates_does_not_import_mm():
    code = (
        "import sys, visiongates; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mmcv', 'mmdet', 'mmseg', 'mmengine')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "name, out_indices, channels, strides",
    [
        ("cbam_resnet18", (1, 2, 3, 4), [64, 128, 256, 512], [4, 8, 16, 32]),
        ("gpsa_convit_tiny", (-1,), [192], [16]),
        ("vig_gla_h_tiny", (0, 2), [96, 384], [4, 16]),
    ],
)
def test_backbone_reports_what_it_returns(name, out_indices, channels, strides):
    backbone = VGBackbone(name, out_indices=out_indices)
    assert backbone.out_channels == channels and backbone.strides == strides
    outs = backbone(torch.randn(1, 3, 64, 96))
    assert isinstance(outs, tuple) and len(outs) == len(channels)
    for out, c, s in zip(outs, channels, strides):
        assert out.shape == (1, c, 64 // s, 96 // s)


@pytest.mark.parametrize("out_indices", [(5,), (-6,), (1, 7), (2, 1), (1, 1), ()])
def test_invalid_out_indices_name_the_valid_range(out_indices):
    with pytest.raises(ValueError, match=r"out_indices") as info:
        VGBackbone("cbam_resnet18", out_indices=out_indices)
    if any(i >= 5 or i < -5 for i in out_indices):
        assert "-5..4" in str(info.value) and "5 feature levels" in str(info.value)


def test_invalid_frozen_stages_and_model_name():
    with pytest.raises(ValueError, match=r"-1\.\.4"):
        VGBackbone("cbam_resnet18", frozen_stages=5)
    with pytest.raises(ValueError, match="unknown model"):
        VGBackbone("cbam_resnet_18")


def test_frozen_stages_freeze_exactly_the_named_levels():
    backbone = VGBackbone("cbam_resnet18", out_indices=(1, 2, 3, 4), frozen_stages=2)
    frozen = {n for n, p in backbone.body.named_parameters() if not p.requires_grad}
    prefixes = ("conv1.", "bn1.", "layer1.", "layer2.")
    assert frozen == {n for n, _ in backbone.body.named_parameters() if n.startswith(prefixes)}
    backbone.train()
    for name, module in backbone.body.named_modules():
        if isinstance(module, _BatchNorm):
            assert module.training == (not (name + ".").startswith(prefixes)), name
    stats = {n: b.clone() for n, b in backbone.body.named_buffers() if "running_mean" in n}
    sum(o.mean() for o in backbone(torch.randn(2, 3, 64, 64))).backward()
    for name, param in backbone.body.named_parameters():
        assert (param.grad is None) == (name in frozen), name
    for name, before in stats.items():
        assert torch.equal(before, backbone.body.get_buffer(name)) == name.startswith(prefixes), name


def test_norm_eval_keeps_every_batchnorm_in_eval():
    backbone = VGBackbone("das_resnet18", out_indices=(1, 2, 3, 4), norm_eval=True).train()
    bns = [m for m in backbone.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert all(p.requires_grad for p in backbone.parameters())


def test_frozen_stages_on_a_vit_freeze_embeddings_and_first_blocks():
    backbone = VGBackbone("gpsa_convit_tiny", out_indices=(-1,), frozen_stages=1)
    frozen = {n for n, p in backbone.body.named_parameters() if not p.requires_grad}
    assert {"model.patch_embed.proj.weight", "model.pos_embed", "model.blocks.1.norm1.weight"} <= frozen
    assert not any(n.startswith("model.blocks.2.") for n in frozen)


@pytest.mark.parametrize("name, out_indices", [("cbam_resnet18", (2, 3)), ("gpsa_convit_tiny", (-1,))])
def test_gradient_checkpointing_gives_the_same_gradients(name, out_indices):
    torch.manual_seed(0)
    plain = VGBackbone(name, out_indices=out_indices).eval()
    checkpointed = VGBackbone(name, out_indices=out_indices, with_cp=True).eval()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for model in (plain, checkpointed):
        sum(o.square().mean() for o in model(x)).backward()
    for (n, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        assert a.grad is not None and torch.allclose(a.grad, b.grad, atol=1e-6), n


class Payload:
    """Any pickled class: the safe loader must refuse it."""


def test_loads_a_local_classifier_checkpoint_safely(tmp_path):
    classifier = timm.create_model("cbam_resnet18", num_classes=7)
    torch.save({"model": classifier.state_dict(), "epoch": 3}, tmp_path / "cls.pth")
    backbone = VGBackbone("cbam_resnet18", out_indices=(1, 2, 3, 4), checkpoint=str(tmp_path / "cls.pth"))
    backbone.init_weights()
    own = backbone.body.state_dict()
    assert all(torch.equal(own[k], v) for k, v in classifier.state_dict().items() if k in own)

    torch.save(timm.create_model("cbam_resnet34").state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="another model"):
        VGBackbone("cbam_resnet18", checkpoint=str(tmp_path / "other.pth")).init_weights()

    torch.save({"model": Payload()}, tmp_path / "unsafe.pth")
    with pytest.raises(CheckpointError, match="safe load"):
        VGBackbone("cbam_resnet18", checkpoint=str(tmp_path / "unsafe.pth")).init_weights()


def test_loads_weights_into_a_getter_backbone(tmp_path):
    vit = timm.create_model("gpsa_convit_tiny")
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    backbone = VGBackbone("gpsa_convit_tiny", out_indices=(5,), checkpoint=str(tmp_path / "vit.pth"))
    backbone.init_weights()
    assert torch.equal(backbone.body.model.blocks[5].mlp.fc1.weight, vit.blocks[5].mlp.fc1.weight)


@pytest.mark.parametrize("scales, num_outs", [((4.0, 2.0, 1.0, 0.5), 5), ((2.0, 1.0, 0.5), 5), ((1.0,), None)])
def test_simple_feature_pyramid_levels(scales, num_outs):
    neck = SimpleFeaturePyramid(in_channels=[64], out_channels=32, scale_factors=scales, num_outs=num_outs)
    outs = neck((torch.randn(2, 64, 8, 8),))
    expected = [int(8 * s) for s in scales]
    while len(expected) < (num_outs or len(scales)):
        expected.append((expected[-1] + 1) // 2)
    assert [o.shape[-1] for o in outs] == expected and all(o.shape[:2] == (2, 32) for o in outs)


def test_layer_decay_scales_lr_by_depth():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = VGBackbone("gpsa_convit_tiny", out_indices=(-1,))
            self.neck = SimpleFeaturePyramid(192, 16)

    model = Detector()
    wrapper = build_optim_wrapper(
        model,
        dict(
            type="OptimWrapper",
            optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.1),
            constructor="LayerDecayOptimWrapperConstructor",
            paramwise_cfg=dict(layer_decay_rate=0.5),
        ),
    )
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in wrapper.optimizer.param_groups for p in g["params"]}
    body = model.backbone.body.model
    assert lr_of[id(body.patch_embed.proj.weight)][0] == pytest.approx(1e-3 * 0.5**13)
    assert lr_of[id(body.blocks[11].mlp.fc1.weight)][0] == pytest.approx(1e-3 * 0.5)
    assert lr_of[id(model.neck.project[0][0].weight)] == (pytest.approx(1e-3), 0.1)
    assert lr_of[id(body.pos_embed)][1] == 0.0 and lr_of[id(body.blocks[0].norm1.weight)][1] == 0.0
    assert len(lr_of) == sum(1 for p in model.parameters() if p.requires_grad)


def test_attention_unet_head_forward_and_losses():
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    init_default_scope("mmseg")
    head = AttentionUNetHead(in_channels=[16, 32, 64], feature_strides=[4, 8, 16], channels=[16, 32], num_classes=3)
    feats = [torch.randn(2, c, n, n) for c, n in zip([16, 32, 64], [32, 16, 8])]
    assert head(feats).shape == (2, 3, 32, 32)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 128, 128)))
        samples.append(sample)
    losses = head.loss(feats, samples, {})
    assert {"loss_ce", "acc_seg", "aux0_loss_ce", "aux1_loss_ce"} <= set(losses)
    sum(v for k, v in losses.items() if "loss" in k).backward()
    assert all(p.grad is not None for p in head.parameters())


def test_mmengine_reads_its_checkpoints_with_the_safe_loader(tmp_path):
    """Resume / load_from go through mmengine's CheckpointLoader: ours reads HistoryBuffers and numpy values with
    weights_only=True, refuses other classes, and allows nothing process-wide."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint

    buffer = HistoryBuffer()
    buffer.update(1.5)
    state = {
        "message_hub": {"log_scalars": {"train/loss": buffer}, "best": np.float64(0.7)},
        "meta": {"classes": ("coin",)},
        "state_dict": {"w": torch.ones(2)},
        "a": np.arange(3),
    }
    torch.save(state, tmp_path / "ckpt.pth")
    loaded = _load_checkpoint(str(tmp_path / "ckpt.pth"), map_location="cpu")
    assert loaded["message_hub"]["log_scalars"]["train/loss"].mean() == 1.5
    assert loaded["message_hub"]["best"] == 0.7 and loaded["a"].tolist() == [0, 1, 2]
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(tmp_path / "ckpt.pth", weights_only=True)  # the allow-list is not widened globally
    torch.save({"state_dict": {}, "payload": Payload()}, tmp_path / "unsafe.pth")
    with pytest.raises(Exception, match="Unsupported global"):
        _load_checkpoint(str(tmp_path / "unsafe.pth"), map_location="cpu")


def _smallest_model_per_family() -> list[str]:
    import visiongates
    from visiongates.models import family_modules

    assert visiongates.list_models()
    smallest = []
    for family in family_modules():
        sizes = {
            n: sum(p.numel() for p in timm.create_model(n, device="meta").parameters())
            for n in timm.list_models(module=family)
        }
        smallest.append(min(sizes, key=sizes.get))
    return smallest


@pytest.mark.parametrize("name", _smallest_model_per_family())
def test_every_zoo_family_works_as_a_backbone(name):
    backbone = VGBackbone(name, out_indices=(-1,), frozen_stages=0)
    (out,) = backbone(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, backbone.out_channels[0], 64 // backbone.strides[0], 64 // backbone.strides[0])
    assert backbone.frozen_parameter_names() and backbone.layer_ids()[1] >= 2


@pytest.mark.parametrize("name", ["gpsa_convit_tiny", "vig_gla_tiny"])
def test_plain_backbones_default_to_three_levels_and_feed_the_pyramid(name):
    """timm's ViT default (the last three blocks) goes through the adapter and the simple feature pyramid as is; the
    pyramid reads the last level, the one `out_indices=(-1,)` (the det/seg configs) selects alone."""
    backbone = VGBackbone(name).eval()
    assert backbone.out_indices == (9, 10, 11) and backbone.strides == [16] * 3
    neck = SimpleFeaturePyramid(backbone.out_channels, 16).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        levels = backbone(x)
        pyramid = neck(levels)
        (last,) = VGBackbone(name, out_indices=(-1,)).eval()(x)
    assert len(levels) == 3 and [tuple(f.shape[2:]) for f in levels] == [(4, 6)] * 3
    assert [tuple(p.shape[2:]) for p in pyramid] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert last.shape == levels[-1].shape
