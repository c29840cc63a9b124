"""ViTDet's simple feature pyramid: a multi-scale pyramid from one single-scale (e.g. stride-16) map.

Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection", ECCV 2022, Sec. 3 / Fig. 2(c): the
last map is upsampled by stride-2 transposed convolutions (x4: two of them with LayerNorm + GELU between, x2: one),
kept (x1) or max-pooled (x0.5); each level then gets a 1x1 and a 3x3 convolution, each followed by LayerNorm.
Extra coarser levels for RetinaNet / RPN come from stride-2 subsampling of the last one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d
from torch import nn

from .registry import register_model


def _rescale(channels: int, scale: float) -> tuple[nn.Module, int]:
    """The resampling branch for one scale factor and its output channels."""
    if scale == 4.0:
        half, quarter = channels // 2, channels // 4
        return nn.Sequential(
            nn.ConvTranspose2d(channels, half, 2, stride=2),
            LayerNorm2d(half),
            nn.GELU(),
            nn.ConvTranspose2d(half, quarter, 2, stride=2),
        ), quarter
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    if scale == 0.5:
        return nn.MaxPool2d(2, stride=2), channels
    raise ValueError(f"scale factors must be among 4, 2, 1, 0.5; got {scale}")


@register_model()
class SimpleFeaturePyramid(BaseModule):
    """in_channels: channels of the single input map (the backbone's last output, or `in_index`).
    out_channels: channels of every pyramid level. scale_factors: one output level per factor, finest first.
    num_outs: total levels (extra ones by stride-2 subsampling of the last); default len(scale_factors).
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        out_channels: int = 256,
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        num_outs: int | None = None,
        in_index: int = -1,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, int):
            in_channels = list(in_channels)[in_index]
        self.in_channels, self.in_index = in_channels, in_index  # checked against the backbone (mm/checks.py)
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = num_outs or len(self.scale_factors)
        if self.num_outs < len(self.scale_factors):
            raise ValueError(f"num_outs ({self.num_outs}) < number of scale factors ({len(self.scale_factors)})")
        self.rescale = nn.ModuleList()
        self.project = nn.ModuleList()
        for scale in self.scale_factors:
            branch, channels = _rescale(in_channels, scale)
            self.rescale.append(branch)
            self.project.append(
                nn.Sequential(
                    nn.Conv2d(channels, out_channels, 1, bias=False),
                    LayerNorm2d(out_channels),
                    nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                    LayerNorm2d(out_channels),
                )
            )

    def forward(self, inputs: Sequence[torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = inputs if isinstance(inputs, torch.Tensor) else inputs[self.in_index]
        outs = [project(rescale(x)) for rescale, project in zip(self.rescale, self.project)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
