"""Attention U-Net (2D): the classic U-Net encoder as a timm model, and the gated segmentation model on any encoder.

Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018 (arXiv:1804.03999; official code
ozan-oktay/Attention-Gated-Networks, MIT). The official networks are 3D (CT); this is their 2D form.

- `attention_unet_encoder` (widths 16-256, the paper's CT networks' `feature_scale=4`) and
  `attention_unet_encoder_base` (64-1024, the original U-Net widths): per level two Conv3x3(bias)-BN-ReLU, 2x2
  max-pool between levels; five feature levels at strides 1, 2, 4, 8, 16. Registered with timm (classifier head,
  `features_only`, `forward_intermediates`), so the decoder treats it like any other backbone.
- `AttentionUNet` = a `features_only` timm encoder + `AttentionUNetDecoder` (visiongates.layers); build it with
  `create_attention_unet(encoder, num_classes, gate='grid'|'equal'|None, deep_supervision=True)`.

Parameter counts, and how they relate to the paper's 5.88M (U-Net) / 6.40M (Attention U-Net) for 3D pancreas CT: the
official 3D layout (`unet_CT_dsv_3D`, `feature_scale=4`, 1 input channel, 2 classes) counts 5,887,466 parameters,
which is the paper's 5.88M; its gated versions count 6,213,613 (one gate per level, `unet_CT_single_att_dsv_3D`) and
6,472,784 (two, `unet_CT_multi_att_dsv_3D`): neither is 6.40M. A 2D version cannot match these figures: every 3x3x3
kernel becomes 3x3 (27 -> 9 weights per channel pair) and the 2x2x2 theta 2x2 (8 -> 4). With 3 input channels and 2
classes, the 2D plain U-Net here (`gate=None`) counts 1,966,058, exactly the official layer formula with those kernel
volumes; the 2D Attention U-Net (`gate='grid'`) counts 2,184,013, the official one-gate layout's 2D formula (2,206,189)
less its extra Conv1x1-BN-ReLU after each gate ('combine_gates', a second 1x1 transform straight after W), which this
version leaves out. The 'equal' gate gives 2,098,451.
No weights exist for a 2D Attention U-Net: there is nothing to download and `checkpoint_filter_fn` only unwraps.
"""

from collections.abc import Sequence
from typing import Any

import timm
import torch
from timm.layers import ClassifierHead, get_device_dtype
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from visiongates.checkpoint import clean_checkpoint
from visiongates.layers.attention_unet_decoder import AttentionUNetDecoder, AttentionUNetOutput
from visiongates.layers.unet_blocks import DoubleConv, init_unet_weights

from ._registry import ModelFacts, build_model, pretrained_cfg
from ._timm_api import Indices, Levels, TimmModelApi

__all__ = ["UNetEncoder", "AttentionUNet", "create_attention_unet", "checkpoint_filter_fn"]


class UNetDownStage(nn.Sequential):
    """2x2 max-pool, then the level's double conv."""

    def __init__(self, in_channels: int, out_channels: int, device=None, dtype=None) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels, device=device, dtype=dtype)


class UNetEncoder(TimmModelApi, nn.Module):
    """The U-Net contracting path (Ronneberger et al. 2015) as in Attention U-Net (Oktay et al. 2018)."""

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        widths = tuple(widths)
        self.widths, self.in_chans, self.num_classes = widths, in_chans, num_classes
        self.num_features = self.head_hidden_size = widths[-1]
        self.grad_checkpointing = False
        self.stem = DoubleConv(in_chans, widths[0], **dd)
        self.stages = nn.Sequential(*[UNetDownStage(widths[i - 1], widths[i], **dd) for i in range(1, len(widths))])
        self.feature_info = [dict(num_chs=widths[0], reduction=1, module="stem")] + [
            dict(num_chs=widths[i], reduction=2**i, module=f"stages.{i - 1}") for i in range(1, len(widths))
        ]
        self.head = ClassifierHead(widths[-1], num_classes, pool_type=global_pool, drop_rate=drop_rate, **dd)
        init_unet_weights(self)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)")

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        # new layers on the encoder's device and dtype, in its train/eval mode (the head alone may have no parameter)
        self.head.reset(num_classes, pool_type=global_pool, **get_device_dtype(self.stem))
        self.head.train(self.training)

    def _stage(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(stage, x)
        return stage(x)

    def _levels(
        self, x: torch.Tensor, indices: Indices, norm: bool, stop_early: bool, output_fmt: str, final: bool
    ) -> Levels:
        """Final map and the selected levels (0 = the full-resolution stem ... 4 = /16); `norm` is unused."""
        take_indices, max_index = feature_take_indices(len(self.stages) + 1, indices)
        x = self._stage(self.stem, x)
        intermediates = [x] if 0 in take_indices else []
        stages = self.stages[:max_index] if stop_early else self.stages
        for index, stage in enumerate(stages, start=1):
            x = self._stage(stage, x)
            if index in take_indices:
                intermediates.append(x)
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the levels after the last wanted one (and the head)."""
        take_indices, max_index = feature_take_indices(len(self.stages) + 1, indices)
        self.stages = self.stages[:max_index]
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint(self.stem, x)
            for stage in self.stages:
                x = checkpoint(stage, x)
            return x
        return self.stages(self.stem(x))  # TorchScript takes no module arguments: no `_stage` here

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class AttentionUNet(nn.Module):
    """Attention U-Net (Oktay et al. 2018): a `features_only` encoder and the attention-gated U-Net decoder."""

    def __init__(self, encoder: nn.Module, num_classes: int, **decoder_kwargs: Any) -> None:
        super().__init__()
        info = encoder.feature_info
        self.encoder = encoder
        self.decoder = AttentionUNetDecoder(info.channels(), info.reduction(), num_classes, **decoder_kwargs)
        self.num_classes = num_classes

    def forward_all(self, x: torch.Tensor) -> AttentionUNetOutput:
        """Logits at the input's size, per-level (deep supervision) logits, and the gates' alpha per skip level."""
        return self.decoder.forward_all(self.encoder(x), output_size=x.shape[-2:])

    def forward(
        self, x: torch.Tensor, return_gates: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Logits [B, K, H, W] at the input's size; with return_gates, also {skip level: alpha [B, 1, h, w]}."""
        out = self.forward_all(x)
        return (out.logits, out.gates) if return_gates else out.logits


def create_attention_unet(
    encoder: str = "attention_unet_encoder",
    num_classes: int = 2,
    gate: str | None = "grid",
    deep_supervision: bool = True,
    pretrained: bool = False,
    in_chans: int = 3,
    out_indices: Sequence[int] | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
    **decoder_kwargs: Any,
) -> AttentionUNet:
    """An Attention U-Net on any timm backbone with `features_only` support giving at least 2 levels.

    encoder: a timm / visiongates model name; out_indices: which of its feature levels to use (default: all it
    offers); gate: 'grid' (official gate, default), 'equal' (equal-resolution gate without W) or None (plain U-Net).
    Further keyword arguments go to `AttentionUNetDecoder` (decoder_channels, gate_levels, inter_channels).
    """
    from ._registry import check_model_name

    kwargs = dict(encoder_kwargs or {})
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    backbone = timm.create_model(
        check_model_name(encoder), pretrained=pretrained, features_only=True, in_chans=in_chans, **kwargs
    )
    levels = len(backbone.feature_info.channels())
    if levels < 2:
        raise ValueError(
            f"'{encoder}' gives {levels} feature map with these settings; a U-Net decoder needs at least 2 "
            "(pass out_indices=... naming two or more levels)"
        )
    model = AttentionUNet(backbone, num_classes, gate=gate, deep_supervision=deep_supervision, **decoder_kwargs)
    model.encoder_name = encoder
    return model


def checkpoint_filter_fn(state_dict: dict[str, Any], model: UNetEncoder) -> dict[str, torch.Tensor]:
    """Unwrap {'model': ...} / {'state_dict': ...} and DataParallel `module.` prefixes (no official 2D weights)."""
    return clean_checkpoint(state_dict)


def _create_encoder(variant: str, pretrained: bool = False, **kwargs: Any) -> UNetEncoder:
    return build_model(UNetEncoder, variant, pretrained, checkpoint_filter_fn, (0, 1, 2, 3, 4), **kwargs)


PAPER = (
    "arXiv:1804.03999",
    "Attention U-Net: Learning Where to Look for the Pancreas",
    "https://github.com/ozan-oktay/Attention-Gated-Networks",
)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    sizes = dict(input_size=(3, 256, 256), pool_size=(16, 16), min_input_size=(3, 16, 16), fixed_input_size=False)
    layers = dict(first_conv="stem.conv1.conv", classifier="head.fc")
    return pretrained_cfg(dict(**sizes, **layers, crop_pct=1.0, interpolation="bilinear", license="mit"), kwargs, PAPER)


default_cfgs = generate_default_cfgs(
    {
        "attention_unet_encoder": _cfg(),
        "attention_unet_encoder_base": _cfg(),
    }
)

_MEASURED = (
    "measured here (GMACs: visiongates.flops, 256x256, 1000-class head); the paper gives only whole-network "
    "3D figures (see the module docstring)"
)
model_facts = {
    "attention_unet_encoder": ModelFacts(1.437752, _MEASURED, 1.086, task="segmentation encoder"),
    "attention_unet_encoder_base": ModelFacts(19.876136, _MEASURED, 17.026, task="segmentation encoder"),
}


@register_model
def attention_unet_encoder(pretrained: bool = False, **kwargs: Any) -> UNetEncoder:
    """U-Net encoder of Attention U-Net, widths 16-256 (the paper's CT networks, feature_scale 4)."""
    return _create_encoder("attention_unet_encoder", pretrained, **dict(dict(widths=(16, 32, 64, 128, 256)), **kwargs))


@register_model
def attention_unet_encoder_base(pretrained: bool = False, **kwargs: Any) -> UNetEncoder:
    """U-Net encoder with the original U-Net widths 64-1024."""
    return _create_encoder(
        "attention_unet_encoder_base", pretrained, **dict(dict(widths=(64, 128, 256, 512, 1024)), **kwargs)
    )
