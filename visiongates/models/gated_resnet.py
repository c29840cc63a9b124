"""Attention-gated ResNets: CBAM-ResNet and DAS-ResNet, built on timm's ResNet.

- CBAM: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (official code: Jongchan/attention-module).
  A CBAM gate sits in every residual block, on the block output before the residual add (paper Fig. 3), in the
  official form (MLP biases, (max, mean) spatial pooling, spatial BN weight initialised to 0, no zero-init of the
  last BN). `checkpoint_filter_fn` loads the official repository's checkpoints (`module.`-prefixed, `cbam.*` keys).
- DAS: Salajegheh et al., "DAS: A Deformable Attention to Capture Salient Information in CNNs", 2023 (no official
  code). One DAS gate at the end of each of the four stages, with a depthwise-separable bottleneck of 1/8 of the
  stage width (see docs/models.md "DAS-ResNet"): a gate per block would cost more than the backbone at 3x3 deformable
  sampling, and the paper stresses similar or fewer FLOPs than other CNN attention.

SE-ResNets are timm's own `seresnet*`; visiongates lists them in its zoo table and does not redefine them.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from visiongates.checkpoint import clean_checkpoint, require_weight_source
from visiongates.layers.gates import CbamGate, DasGate, DeformConv3x3

from ._registry import ModelFacts, pretrained_cfg

__all__ = ["CbamResNet", "DasResNet", "checkpoint_filter_fn"]


class CbamResNet(ResNet):
    """ResNet with an official-form CBAM gate in every residual block (Woo et al. 2018)."""

    def __init__(self, cbam_reduction: int = 16, zero_init_last: bool = False, **kwargs: Any) -> None:
        block_args = dict(kwargs.pop("block_args", None) or {})
        block_args["attn_layer"] = partial(CbamGate, reduction=cbam_reduction)
        super().__init__(zero_init_last=zero_init_last, block_args=block_args, **kwargs)


class DasResNet(ResNet):
    """ResNet with a DAS gate after the last block of each stage (Salajegheh et al. 2023)."""

    def __init__(self, das_compression: float = 0.125, das_stages: tuple[int, ...] = (0, 1, 2, 3), **kwargs: Any):
        device, dtype = kwargs.get("device"), kwargs.get("dtype")
        super().__init__(**kwargs)
        for index in das_stages:
            stage = getattr(self, f"layer{index + 1}")
            channels = self.feature_info[index + 1]["num_chs"]
            stage.add_module("das", DasGate(channels, compression=das_compression, device=device, dtype=dtype))
        for module in self.modules():
            if isinstance(module, DeformConv3x3):
                module.reset_offsets()


_OFFICIAL_CBAM_RENAMES = (
    (r"\.cbam\.ChannelGate\.mlp\.1\.", ".se.channel.mlp.fc1."),
    (r"\.cbam\.ChannelGate\.mlp\.3\.", ".se.channel.mlp.fc2."),
    (r"\.cbam\.SpatialGate\.spatial\.conv\.", ".se.spatial.conv.conv."),
    (r"\.cbam\.SpatialGate\.spatial\.bn\.", ".se.spatial.conv.bn."),
)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: ResNet) -> dict[str, torch.Tensor]:
    """Map a checkpoint of the official CBAM repository (Jongchan/attention-module) to this model's keys.

    Accepts the raw file content (`{'state_dict': ..., 'epoch': ...}`), DataParallel `module.` prefixes and
    already-converted state dicts.
    """
    out = {}
    for key, value in clean_checkpoint(state_dict).items():
        for pattern, replacement in _OFFICIAL_CBAM_RENAMES:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def _create_gated_resnet(cls: type[ResNet], variant: str, pretrained: bool = False, **kwargs: Any) -> ResNet:
    if pretrained:
        require_weight_source(variant, kwargs)  # the official CBAM weights are a manual download
    return build_model_with_cfg(cls, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn, **kwargs)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    layers = dict(first_conv="conv1", classifier="fc")
    return pretrained_cfg(dict(pool_size=(7, 7), interpolation="bilinear", **layers, license="mit"), kwargs)


# GMACs of every variant are counted here (visiongates.flops, meta device, 224x224:
# `python tools/analysis/count_macs.py`).
# The CBAM paper's Tab. 4 gives 3.864 / 7.581 GFLOPs (multiply-accumulates) for R50 / R101 + CBAM: that network puts
# each downsampling bottleneck's stride on its first 1x1 conv (as the original ResNet); the official code
# (Jongchan/attention-module MODELS/model_resnet.py) and timm, hence this model and the released weights, put it on
# the 3x3 conv, which computes the 3x3 at full resolution: 4.096 / 7.813. Moving the stride to the 1x1 gives exactly
# 3.8644 / 7.5814 (tests/test_macs.py), so the gap is the stride placement, not the counter.
_CBAM_TABLE4 = "params: CBAM paper Tab. 4 (R50 also in docs/models.md); GMACs counted here (visiongates.flops)"
_STRIDE = "GMACs (paper Tab. 4) with the stride on the bottleneck's 1x1 conv; the official code strides the 3x3"
_MEASURED = "measured here at 224x224 (GMACs: visiongates.flops, deformable convs included); no published figure"
# The official CBAM repository (Jongchan/attention-module, README "Resume with checkpoints") publishes one ImageNet
# checkpoint, ResNet50+CBAM (ACC@1 77.622), as a Google Drive share page rather than a direct URL: the tag names it,
# and loading takes the downloaded file (`pretrained_cfg_overlay=dict(file=...)`). The README's revision of 2022-09-12
# (commit 459efad) replaced the original Dropbox share of RESNET50_CBAM_new_name_wrap.pth, which no longer resolves,
# with this Drive file; the link could not be opened from this project's machines.
_CBAM_DRIVE = "https://drive.google.com/file/d/1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO/view?usp=sharing"
default_cfgs = generate_default_cfgs(
    {
        **{f"cbam_resnet{depth}": _cfg(paper_ids="arXiv:1807.06521") for depth in (18, 34, 101, 152)},
        "cbam_resnet50.jongchan_in1k": _cfg(
            paper_ids="arXiv:1807.06521",
            origin_url="https://github.com/Jongchan/attention-module",
            description=(
                "official ResNet50+CBAM ImageNet-1k checkpoint, top-1 77.622 (Jongchan/attention-module README)"
            ),
            notes=(
                f"manual download of the ResNet50+CBAM checkpoint from {_CBAM_DRIVE} (a Google Drive share page "
                "linked from the official README, no direct URL); then pretrained=True, "
                "pretrained_cfg_overlay=dict(file=PATH)",
            ),
        ),
        **{f"das_resnet{depth}": _cfg(paper_ids="arXiv:2311.12091") for depth in (18, 34, 50, 101)},
    }
)
model_facts = {
    "cbam_resnet18": ModelFacts(11.78, _CBAM_TABLE4, 1.815),
    "cbam_resnet34": ModelFacts(21.96, _CBAM_TABLE4, 3.665),
    "cbam_resnet50": ModelFacts(28.09, _CBAM_TABLE4, 4.096, params_tol=0.01, published=f"3.864 {_STRIDE}"),
    "cbam_resnet101": ModelFacts(49.33, _CBAM_TABLE4, 7.813, published=f"7.581 {_STRIDE}"),
    "cbam_resnet152": ModelFacts(66.827, _MEASURED, 11.529),
    "das_resnet18": ModelFacts(12.156, _MEASURED, 1.889),
    "das_resnet34": ModelFacts(22.264, _MEASURED, 3.739),
    "das_resnet50": ModelFacts(32.645, _MEASURED, 5.161),
    "das_resnet101": ModelFacts(51.637, _MEASURED, 8.873),
}


@register_model
def cbam_resnet18(pretrained: bool = False, **kwargs: Any) -> CbamResNet:
    """CBAM-ResNet-18 (Woo et al. 2018): CBAM in every basic block."""
    model_args = dict(block=BasicBlock, layers=(2, 2, 2, 2))
    return _create_gated_resnet(CbamResNet, "cbam_resnet18", pretrained, **dict(model_args, **kwargs))


@register_model
def cbam_resnet34(pretrained: bool = False, **kwargs: Any) -> CbamResNet:
    """CBAM-ResNet-34 (Woo et al. 2018): CBAM in every basic block."""
    model_args = dict(block=BasicBlock, layers=(3, 4, 6, 3))
    return _create_gated_resnet(CbamResNet, "cbam_resnet34", pretrained, **dict(model_args, **kwargs))


@register_model
def cbam_resnet50(pretrained: bool = False, **kwargs: Any) -> CbamResNet:
    """CBAM-ResNet-50 (Woo et al. 2018): CBAM in every bottleneck."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3))
    return _create_gated_resnet(CbamResNet, "cbam_resnet50", pretrained, **dict(model_args, **kwargs))


@register_model
def cbam_resnet101(pretrained: bool = False, **kwargs: Any) -> CbamResNet:
    """CBAM-ResNet-101 (Woo et al. 2018): CBAM in every bottleneck."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 23, 3))
    return _create_gated_resnet(CbamResNet, "cbam_resnet101", pretrained, **dict(model_args, **kwargs))


@register_model
def cbam_resnet152(pretrained: bool = False, **kwargs: Any) -> CbamResNet:
    """CBAM-ResNet-152 (Woo et al. 2018): CBAM in every bottleneck."""
    model_args = dict(block=Bottleneck, layers=(3, 8, 36, 3))
    return _create_gated_resnet(CbamResNet, "cbam_resnet152", pretrained, **dict(model_args, **kwargs))


@register_model
def das_resnet18(pretrained: bool = False, **kwargs: Any) -> DasResNet:
    """DAS-ResNet-18 (Salajegheh et al. 2023): a DAS gate after each stage."""
    model_args = dict(block=BasicBlock, layers=(2, 2, 2, 2))
    return _create_gated_resnet(DasResNet, "das_resnet18", pretrained, **dict(model_args, **kwargs))


@register_model
def das_resnet34(pretrained: bool = False, **kwargs: Any) -> DasResNet:
    """DAS-ResNet-34 (Salajegheh et al. 2023): a DAS gate after each stage."""
    model_args = dict(block=BasicBlock, layers=(3, 4, 6, 3))
    return _create_gated_resnet(DasResNet, "das_resnet34", pretrained, **dict(model_args, **kwargs))


@register_model
def das_resnet50(pretrained: bool = False, **kwargs: Any) -> DasResNet:
    """DAS-ResNet-50 (Salajegheh et al. 2023): a DAS gate after each stage."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3))
    return _create_gated_resnet(DasResNet, "das_resnet50", pretrained, **dict(model_args, **kwargs))


@register_model
def das_resnet101(pretrained: bool = False, **kwargs: Any) -> DasResNet:
    """DAS-ResNet-101 (Salajegheh et al. 2023): a DAS gate after each stage."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 23, 3))
    return _create_gated_resnet(DasResNet, "das_resnet101", pretrained, **dict(model_args, **kwargs))
