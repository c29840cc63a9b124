"""An mmsegmentation decode head around the Attention U-Net decoder (visiongates.layers.AttentionUNetDecoder).

It decodes any multi-level backbone output (e.g. a `VGBackbone` over CBAM-ResNet or ViG-H levels) with attention-
gated skips. With deep supervision, the per-level classifiers also get an auxiliary loss (weight `aux_weight`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from visiongates.layers.attention_unet_decoder import AttentionUNetDecoder

from .registry import register_model


@register_model()
class AttentionUNetHead(BaseDecodeHead):
    """in_channels / in_index: the backbone levels to decode (finest first); feature_strides: their strides.
    channels: decoder width (an int for every level, or one per skip level). gate: 'grid', 'equal' or None.
    Other arguments as mmseg's BaseDecodeHead (num_classes, loss_decode, ignore_index, align_corners...).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        feature_strides: Sequence[int],
        channels: int | Sequence[int] = 64,
        gate: str | None = "grid",
        deep_supervision: bool = True,
        aux_weight: float = 0.4,
        **kwargs,
    ) -> None:
        in_channels = list(in_channels)
        kwargs.setdefault("in_index", list(range(len(in_channels))))
        kwargs.setdefault("init_cfg", None)
        widths = [channels] * (len(in_channels) - 1) if isinstance(channels, int) else list(channels)
        super().__init__(in_channels, widths[0], input_transform="multiple_select", **kwargs)
        del self.conv_seg  # the decoder has its own classifiers
        self.decoder = AttentionUNetDecoder(
            in_channels,
            feature_strides,
            self.out_channels,
            decoder_channels=widths,
            gate=gate,
            deep_supervision=deep_supervision,
        )
        self.aux_weight = aux_weight

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.decoder(self._transform_inputs(inputs))

    def loss(self, inputs: Sequence[torch.Tensor], batch_data_samples: list, train_cfg: dict) -> dict:
        out = self.decoder.forward_all(self._transform_inputs(inputs))
        losses = self.loss_by_feat(out.logits, batch_data_samples)
        if self.aux_weight > 0:
            for level, logits in enumerate(out.aux_logits):
                for key, value in self.loss_by_feat(logits, batch_data_samples).items():
                    if "loss" in key:
                        losses[f"aux{level}_{key}"] = value * self.aux_weight
        return losses
