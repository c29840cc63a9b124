"""Attention gates for convolutional features: CBAM (official form) and DAS.

CBAM: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018. Channel gate
M_c(F) = sigma(MLP(AvgPool(F)) + MLP(MaxPool(F))), spatial gate
M_s(F) = sigma(BN(conv7x7([MaxPool_c(F); AvgPool_c(F)]))), applied in that order (Eq. 1-3).
This is the official repository's form (Jongchan/attention-module): MLP with biases, (max, mean)
channel-pool order, spatial BN weight initialised to 0. timm's `CbamModule` differs on all three.

DAS: Salajegheh et al., "DAS: A Deformable Attention to Capture Salient Information in CNNs", 2023.
No official code: depthwise-separable conv with channel compression -> LayerNorm -> GELU -> offset conv ->
3x3 deformable conv -> LayerNorm -> sigmoid gate multiplied into the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import ConvNormAct, LayerNorm2d, Mlp
from torch import nn
from torchvision.ops import deform_conv2d


class CbamChannelGate(nn.Module):
    """CBAM channel gate: one shared MLP (with biases) on the avg- and max-pooled vectors, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int = 16, device=None, dtype=None) -> None:
        super().__init__()
        self.mlp = Mlp(channels, channels // reduction, channels, act_layer=nn.ReLU, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3)))
        return x * torch.sigmoid(logits)[:, :, None, None]


class CbamSpatialGate(nn.Module):
    """CBAM spatial gate: conv7x7 + BN on the (max, mean) channel pools, sigmoid; BN weight starts at 0."""

    def __init__(self, kernel_size: int = 7, device=None, dtype=None) -> None:
        super().__init__()
        self.conv = ConvNormAct(2, 1, kernel_size, apply_act=False, device=device, dtype=dtype)
        self.conv.bn.momentum = 0.01  # the official BasicConv's BatchNorm momentum
        nn.init.zeros_(self.conv.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CbamGate(nn.Module):
    """CBAM: channel gate then spatial gate (Woo et al. 2018, Eq. 1), as in the official code."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, device=None, dtype=None) -> None:
        super().__init__()
        self.channel = CbamChannelGate(channels, reduction, device=device, dtype=dtype)
        self.spatial = CbamSpatialGate(kernel_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class DeformConv3x3(nn.Module):
    """3x3 deformable convolution (Dai et al. 2017) via `torchvision.ops.deform_conv2d`; offsets predicted from x."""

    def __init__(self, in_chs: int, out_chs: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.offset = nn.Conv2d(in_chs, 2 * 9, 3, padding=1, **dd)
        self.weight = nn.Parameter(torch.empty(out_chs, in_chs, 3, 3, **dd))
        self.bias = nn.Parameter(torch.zeros(out_chs, **dd))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.reset_offsets()

    def reset_offsets(self) -> None:
        """Zero the offset predictor so the deformable conv starts as a plain 3x3 conv (re-run after a model's
        blanket conv init, which would otherwise randomise it)."""
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(x, self.offset(x), self.weight, self.bias, padding=(1, 1))


class DasGate(nn.Module):
    """DAS attention gate (Salajegheh et al. 2023): y = x * sigmoid(LN(DeformConv(GELU(LN(DSConv(x)))))).

    `compression` sets the width of the depthwise-separable bottleneck (alpha * C channels); offsets for the 3x3
    deformable conv are predicted from that bottleneck, so the gate can look outside the fixed 3x3 window.
    """

    def __init__(self, channels: int, compression: float = 0.125, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        hidden = max(8, int(round(channels * compression)))
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False, **dd)
        self.pointwise = nn.Conv2d(channels, hidden, 1, bias=False, **dd)
        self.norm1 = LayerNorm2d(hidden, **dd)
        self.deform = DeformConv3x3(hidden, channels, **dd)
        self.norm2 = LayerNorm2d(channels, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.pointwise(self.depthwise(x))))
        return x * torch.sigmoid(self.norm2(self.deform(h)))
