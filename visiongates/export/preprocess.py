"""Image files to model inputs through visiongates' own pipeline: the albumentations evaluation transform and
OpenCV, as tools/eval.py and training validation use them. The runtime (runtime/visiongates_runtime/preprocess.py)
does the same in numpy; `visiongates.export.OnnxModel` runs these versions, so tests can check that both give the
same pixels. Files are decoded by the one decoder, `visiongates_runtime.images.load_rgb`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from visiongates_runtime.images import load_array
from visiongates_runtime.preprocess import dense_input as _dense_input
from visiongates_runtime.preprocess import dense_size, reflect_pad  # noqa: F401

from visiongates.data import eval_transform

from .metadata import ModelInfo


def read_image(path: str | Path, channels: int = 3, max_pixels: int | None = None) -> np.ndarray:
    """An image file as an H x W x C uint8 array (every PIL mode converted; ImageDecodeError if unreadable)."""
    return load_array(path, channels, max_pixels)


def classification_input(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """C x H x W float32: timm's evaluation protocol at the exported input size (visiongates' eval_transform)."""
    _, height, width = info.input_size
    if height != width:
        from visiongates.errors import DataError

        raise DataError(f"classification preprocessing needs a square input size, not {height}x{width}")
    transform = eval_transform(height, crop_pct=info.crop_pct, mean=info.mean, std=info.std)
    return transform(image=image)["image"].numpy()


def cv2_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def cv2_resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)


def dense_input(image: np.ndarray, info: ModelInfo) -> tuple[np.ndarray, tuple[int, ...]]:
    """C x H x W float32 of the whole image in [0, 1], normalised, and the box (top, left, height, width) of the
    image in the model's output (reflect-padded or resized with OpenCV as the metadata says)."""
    return _dense_input(image, info, cv2_resize)


def model_input(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The preprocessing the model's task calls for (C x H x W float32)."""
    return classification_input(image, info) if info.task == "classification" else dense_input(image, info)[0]
