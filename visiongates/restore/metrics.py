"""PSNR and SSIM of restored images, computed by scikit-image (skimage.metrics) on [0, 1] RGB images."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["to_image", "psnr", "ssim"]


def to_image(x: torch.Tensor) -> np.ndarray:
    """CHW tensor -> HWC float64 array clipped to [0, 1] (what a saved image would hold, before quantisation)."""
    return x.detach().float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy().astype(np.float64)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of one CHW image against its target, data range 1 (RGB, no border crop, as official run_eval)."""
    return float(peak_signal_noise_ratio(to_image(target), to_image(pred), data_range=1.0))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM of one CHW image (Wang et al. 2004 setting: 11x11 Gaussian window, sigma 1.5, averaged over channels)."""
    return float(
        structural_similarity(
            to_image(target),
            to_image(pred),
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
