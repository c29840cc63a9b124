"""U-Net building blocks: the double 3x3 conv of every level and the decoder's resize-concatenate-convolve step.

Ronneberger et al., "U-Net", MICCAI 2015, in the form Attention U-Net uses (Oktay et al., MIDL 2018, official code
ozan-oktay/Attention-Gated-Networks): Conv3x3 (with bias) -> BN -> ReLU, twice; the decoder upsamples the coarser map,
concatenates [skip, upsampled] and applies the double conv. Here the upsampling resizes to the skip's exact size
(bilinear), so odd input sizes need no padding or cropping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBnReLU", "DoubleConv", "UNetUpBlock", "init_unet_weights", "resize_to"]


def resize_to(x: torch.Tensor, size: tuple[int, int] | torch.Size, mode: str = "bilinear") -> torch.Tensor:
    """`x` resampled to the explicit spatial `size` (no-op when it already has it)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode=mode)
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)


class ConvBnReLU(nn.Sequential):
    """Conv (bias, as in the official U-Net code) -> BatchNorm -> ReLU."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, device=None, dtype=None) -> None:
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=True, **dd)
        self.bn = nn.BatchNorm2d(out_chs, **dd)
        self.act = nn.ReLU(inplace=True)


class DoubleConv(nn.Sequential):
    """Two 3x3 Conv-BN-ReLU: one U-Net level (encoder or decoder)."""

    def __init__(self, in_chs: int, out_chs: int, device=None, dtype=None) -> None:
        super().__init__()
        self.conv1 = ConvBnReLU(in_chs, out_chs, device=device, dtype=dtype)
        self.conv2 = ConvBnReLU(out_chs, out_chs, device=device, dtype=dtype)


class UNetUpBlock(nn.Module):
    """Decoder level: resize the coarser map to the skip's size, concatenate [skip, coarse], DoubleConv."""

    def __init__(self, skip_chs: int, coarse_chs: int, out_chs: int, device=None, dtype=None) -> None:
        super().__init__()
        self.conv = DoubleConv(skip_chs + coarse_chs, out_chs, device=device, dtype=dtype)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, resize_to(coarse, skip.shape[-2:])], dim=1))


def init_unet_weights(module: nn.Module) -> None:
    """The official code's 'kaiming' init: convs kaiming-normal (fan-in), BN weight N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if m.weight.is_meta:
                continue
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None and not m.weight.is_meta:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
