"""Synthetic degradations for restoration training: additive white Gaussian noise and blur kernels.

Each degradation maps a float CHW image in [0, 1] to its degraded version, drawing randomness only from the
`torch.Generator` it is given, so a held-out set can be degraded identically on every evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from visiongates.errors import VisionGatesError

__all__ = ["GaussianNoise", "KernelBlur", "Compose", "gaussian_kernel", "motion_kernel", "build_degradation"]


class GaussianNoise:
    """Additive white Gaussian noise of standard deviation `sigma` on the 0-255 scale (sigma=25: ~20.2 dB PSNR).

    No clipping by default, as in the usual AWGN denoising benchmarks; `clip=True` keeps the result in [0, 1].
    """

    def __init__(self, sigma: float, clip: bool = False):
        self.sigma, self.clip = float(sigma), clip

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(image.shape, generator=generator, dtype=image.dtype) * (self.sigma / 255.0)
        out = image + noise
        return out.clamp(0.0, 1.0) if self.clip else out


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Isotropic 2-D Gaussian blur kernel, normalised to sum 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


def motion_kernel(size: int, angle: float) -> torch.Tensor:
    """Linear motion blur: a line of length `size` through the centre at `angle` degrees, normalised to sum 1."""
    k = torch.zeros(size, size, dtype=torch.float64)
    c = (size - 1) / 2
    rad = math.radians(angle)
    for t in torch.linspace(-c, c, 4 * size):
        x, y = c + float(t) * math.cos(rad), c - float(t) * math.sin(rad)
        k[round(y), round(x)] = 1.0
    return (k / k.sum()).float()


class KernelBlur:
    """Convolve every channel with a blur kernel (reflect padding keeps the size)."""

    def __init__(self, kernel: torch.Tensor):
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise VisionGatesError(f"blur kernels must be 2-D with odd sides, got {tuple(kernel.shape)}")
        self.kernel = kernel

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        c = image.shape[0]
        kh, kw = self.kernel.shape
        weight = self.kernel.to(image.dtype).expand(c, 1, kh, kw)
        padded = F.pad(image[None], (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
        return F.conv2d(padded, weight, groups=c)[0]


class Compose:
    """Apply degradations in order (e.g. blur, then noise)."""

    def __init__(self, steps: Sequence[Any]):
        self.steps = list(steps)

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for step in self.steps:
            image = step(image, generator)
        return image


def build_degradation(specs: Sequence[dict[str, Any]]) -> Compose:
    """Degradation pipeline from config entries, e.g. `[{type: gaussian_blur, size: 9, sigma: 1.6},
    {type: gaussian_noise, sigma: 25}]`. Types: gaussian_noise (sigma, clip), gaussian_blur (size, sigma),
    motion_blur (size, angle)."""
    steps = []
    for spec in specs:
        spec = dict(spec)
        kind = spec.pop("type", None)
        try:
            if kind == "gaussian_noise":
                steps.append(GaussianNoise(**spec))
            elif kind == "gaussian_blur":
                steps.append(KernelBlur(gaussian_kernel(int(spec["size"]), float(spec["sigma"]))))
            elif kind == "motion_blur":
                steps.append(KernelBlur(motion_kernel(int(spec["size"]), float(spec.get("angle", 0.0)))))
            else:
                raise VisionGatesError(
                    f"unknown degradation type {kind!r} (gaussian_noise, gaussian_blur, motion_blur)"
                )
        except (TypeError, KeyError) as exc:
            raise VisionGatesError(f"bad degradation {kind!r} options {spec}: {exc}") from None
    return Compose(steps)
