"""Image arrays to model inputs from an exported model's metadata alone, in numpy: the pixels visiongates'
validation pipeline (visiongates/data/transforms.py `eval_transform`, albumentations over OpenCV) gives the model.

Classification (timm's evaluation protocol): resize the shorter side to floor(size / crop_pct) with OpenCV's
bilinear filter (the new sides rounded as albumentations' SmallestMaxSize rounds them), centre-crop `size`, then
(x - 255 mean) / (255 std) in float32 through a 256-entry table, as albumentations' Normalize does. Restoration and
segmentation keep the whole image: scaled to [0, 1] and normalised, reflect-padded (MAXIM) or resized where the
graph needs multiples of a size or has a fixed one.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import DataError
from .metadata import ModelInfo
from .resize import resize_linear


def normalize_table(info: ModelInfo, channels: int) -> np.ndarray:
    """[C, 256] float32: (v - 255 mean) * (1 / (255 std)) for every 8-bit value v, in float32 like albumentations."""
    mean = np.array(info.mean, dtype=np.float32) * np.float32(255.0)
    denominator = np.reciprocal(np.array(info.std, dtype=np.float32) * np.float32(255.0))
    values = np.arange(256, dtype=np.float32)
    return ((values[None, :] - mean[:channels, None]) * denominator[:channels, None]).astype(np.float32)


def normalize(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """H x W x C uint8 -> C x H x W float32, normalised with the metadata's mean and std."""
    channels = image.shape[2]
    table = normalize_table(info, channels)
    return np.ascontiguousarray(np.stack([table[c][image[..., c]] for c in range(channels)]))


def shorter_side_size(height: int, width: int, target: int) -> tuple[int, int]:
    """(H, W) with the shorter side `target`: albumentations' SmallestMaxSize (round(side * target / shorter))."""
    scale = target / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def classification_input(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """C x H x W float32: resize (shorter side to size / crop_pct), centre crop, normalise."""
    _, height, width = info.input_size
    if height != width:
        raise DataError(f"classification preprocessing needs a square input size, not {height}x{width}")
    resized = resize_linear(image, *shorter_side_size(*image.shape[:2], math.floor(height / info.crop_pct)))
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return normalize(resized[top : top + height, left : left + width], info)


def dense_size(height: int, width: int, info: ModelInfo) -> tuple[int, int]:
    """The size a whole image is resized to: its own rounded to `size_multiple` where H and W are dynamic, else the
    exported one."""
    if "height" not in info.dynamic or "width" not in info.dynamic:
        return info.input_size[1], info.input_size[2]
    m = info.size_multiple
    return max(m, round(height / m) * m), max(m, round(width / m) * m)


def reflect_pad(image: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad an H x W x C image to multiples of `multiple` as MAXIM's run_eval.py does (an odd side first gets
    one reflected row at its end, then the even size is padded equally on both sides); returns it and the
    (top, left) offset of the original."""
    offsets = []
    for axis in (0, 1):
        extra = image.shape[axis] % 2
        widths = [(0, 0)] * 3
        widths[axis] = (0, extra)
        image = np.pad(image, widths, mode="reflect")
        half = -image.shape[axis] % multiple // 2
        widths[axis] = (half, half)
        image = np.pad(image, widths, mode="reflect")
        offsets.append(half)
    return image, (offsets[0], offsets[1])


def dense_frame(image: np.ndarray, info: ModelInfo, resize=resize_linear) -> tuple[np.ndarray, tuple[int, ...]]:
    """The whole image as the graph takes it (H x W x C uint8: reflect-padded where the metadata says pad='reflect',
    else resized as `dense_size` says) and the box (top, left, height, width) of the image in the model's output."""
    height, width = image.shape[:2]
    if info.pad == "reflect" and "height" in info.dynamic:
        image, (top, left) = reflect_pad(image, info.size_multiple)
        return image, (top, left, height, width)
    height, width = dense_size(height, width, info)
    if (height, width) != image.shape[:2]:
        image = resize(image, height, width).reshape(height, width, -1)
    return image, (0, 0, height, width)


def dense_input(image: np.ndarray, info: ModelInfo, resize=resize_linear) -> tuple[np.ndarray, tuple[int, ...]]:
    """C x H x W float32 of the whole image in [0, 1], normalised ((x / 255 - mean) / std in float32), and the box
    of the image in the model's output (see `dense_frame`)."""
    frame, box = dense_frame(image, info, resize)
    x = frame.astype(np.float32) / 255.0
    x = (x - np.asarray(info.mean, np.float32)) / np.asarray(info.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)), box
