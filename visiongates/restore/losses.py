"""Restoration losses of MAXIM (Tu et al. CVPR 2022, Eq. 9): Charbonnier + 0.1 x frequency L1, summed over stages
and supervision scales."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["charbonnier_loss", "frequency_l1_loss", "MultiScaleRestorationLoss"]


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean of sqrt((pred - target)^2 + eps^2) (Charbonnier, a smooth L1; eps = 1e-3 as in MPRNet / MAXIM)."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def frequency_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance of the 2-D FFTs, ||F(pred) - F(target)||_1, as the mean absolute real and imaginary parts."""
    diff = torch.fft.fft2(pred.float()) - torch.fft.fft2(target.float())
    return torch.view_as_real(diff).abs().mean()


class MultiScaleRestorationLoss(nn.Module):
    """sum over stages s and scales n of Charbonnier(R_sn, T_n) + freq_weight * FreqL1(R_sn, T_n).

    `outputs` is a model output (one image) or MAXIM's outputs[stage][scale]; the target of each scale is the full
    target downsampled the way the model downsamples its input (half-pixel nearest for MAXIM).
    """

    def __init__(self, eps: float = 1e-3, freq_weight: float = 0.1, downsample_mode: str = "nearest-exact"):
        super().__init__()
        self.eps, self.freq_weight, self.downsample_mode = eps, freq_weight, downsample_mode

    def _target(self, target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if tuple(size) == tuple(target.shape[-2:]):
            return target
        return F.interpolate(target, size=tuple(size), mode=self.downsample_mode)

    def forward(self, outputs: torch.Tensor | Sequence, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = [[outputs]]
        total = target.new_zeros(())
        for stage in outputs:
            for pred in stage:
                t = self._target(target, pred.shape[-2:])
                total = total + charbonnier_loss(pred, t, self.eps)
                if self.freq_weight:
                    total = total + self.freq_weight * frequency_l1_loss(pred, t)
        return total
