"""Image files to model inputs, from the metadata of an exported model alone (no checkpoint, no model code).

Classification uses visiongates' evaluation transform (resize the shorter side to size / crop_pct, centre crop,
normalise), the one tools/eval.py uses, so onnxruntime sees exactly what PyTorch saw. Restoration and segmentation
keep the whole image: scaled to [0, 1] and normalised, reflect-padded (MAXIM) or resized where the graph needs
multiples of a size or has a fixed one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from visiongates.data import eval_transform
from visiongates.errors import DataError

from .metadata import ModelInfo

MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """An image file as an H x W x C uint8 array; a file whose channel count differs from `channels` is an error
    (palette images count as RGB; nothing is converted silently)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image '{path}' does not exist")
    try:
        with Image.open(path) as image:
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            found = len(image.getbands())
            if found != channels:
                want = MODES.get(channels, f"{channels}-channel")
                raise DataError(
                    f"image '{path}' has {found} channel(s) (mode {image.mode}); the model takes {channels} ({want}). "
                    f"Convert it first, e.g. PIL: Image.open(path).convert('{want}')"
                )
            array = np.asarray(image.convert(MODES[channels]) if channels in MODES else image)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(f"image '{path}' cannot be decoded ({exc})") from None
    return array.reshape(*array.shape[:2], channels).astype(np.uint8, copy=False)


def classification_input(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """C x H x W float32: timm's evaluation protocol at the exported input size."""
    _, height, width = info.input_size
    if height != width:
        raise DataError(f"classification preprocessing needs a square input size, not {height}x{width}")
    transform = eval_transform(height, crop_pct=info.crop_pct, mean=info.mean, std=info.std)
    return transform(image=image)["image"].numpy()


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


def dense_input(image: np.ndarray, info: ModelInfo) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """C x H x W float32 of the whole image in [0, 1], normalised, and the box (top, left, height, width) of the
    image in the model's output. The image is reflect-padded to `size_multiple` where the metadata says
    pad='reflect' (the box then excludes the padding), else resized as `dense_size` says (the box is the output)."""
    height, width = image.shape[:2]
    if info.pad == "reflect" and "height" in info.dynamic:
        image, (top, left) = reflect_pad(image, info.size_multiple)
        box = (top, left, height, width)
    else:
        height, width = dense_size(height, width, info)
        if (height, width) != image.shape[:2]:
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
        box = (0, 0, height, width)
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(info.mean, np.float32)) / np.asarray(info.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)), box


def model_input(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The preprocessing the model's task calls for (C x H x W float32)."""
    return classification_input(image, info) if info.task == "classification" else dense_input(image, info)[0]
