"""Albumentations pipelines for classification: random-resized-crop training, resize + centre-crop evaluation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import albumentations as A
from albumentations.pytorch import ToTensorV2
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


def train_transform(
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    hflip: float = 0.5,
    rotate: float = 0.0,
    color_jitter: float = 0.0,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> A.Compose:
    """RandomResizedCrop, optional flip / rotation / colour jitter, normalisation, CHW float tensor."""
    steps: list[A.BasicTransform] = [A.RandomResizedCrop(size=(size, size), scale=scale)]
    if hflip > 0:
        steps.append(A.HorizontalFlip(p=hflip))
    if rotate > 0:
        steps.append(A.Affine(rotate=(-rotate, rotate), p=1.0))
    if color_jitter > 0:
        steps.append(A.ColorJitter(color_jitter, color_jitter, color_jitter, 0.0, p=0.8))
    steps += [A.Normalize(mean=mean, std=std), ToTensorV2()]
    return A.Compose(steps)


def eval_transform(
    size: int,
    crop_pct: float = 0.875,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> A.Compose:
    """Resize the shorter side to size / crop_pct, centre-crop `size`, normalise (timm's evaluation protocol)."""
    resize = math.floor(size / crop_pct)
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=resize),
            A.CenterCrop(height=size, width=size),
            A.Normalize(mean=mean, std=std),
            ToTensorV2(),
        ]
    )
