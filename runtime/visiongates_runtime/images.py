"""The one image decoder of visiongates: training, evaluation, export checks and the runtime all read files here.

`load_rgb(path)` returns an 8-bit RGB `PIL.Image` for every mode PIL opens:
- 1, L, P, CMYK, YCbCr, HSV, RGB: PIL's own conversion to RGB (grey replicated, palette looked up; CMYK without
  a colour profile, as PIL converts it).
- LA, La, PA, RGBA, RGBa, and P / L / RGB with a transparency key: alpha composited on white (what a viewer shows
  on a white page), so nothing hidden under transparent pixels reaches the model.
- I;16, I;16L, I;16B, I;16N (16-bit grey) and I (32-bit integers, which PIL uses for 16-bit data): the 0-65535 range
  scaled to 0-255 (round(v / 257)), values outside it clipped. F (32-bit float): the 0-1 range scaled to 0-255.
The first frame of a multi-frame file (GIF, TIFF) is used. EXIF orientation is applied (`ImageOps.exif_transpose`:
a phone photo stored sideways with an orientation tag comes out upright, as viewers show it), so training,
evaluation, export checks and the runtime see the same upright pixels.

Files over a pixel limit are refused before their pixels are decoded (a small PNG can declare 20000 x 20000 =
400 M pixels): the limit is `max_pixels` if given, else the environment variable VISIONGATES_MAX_PIXELS, else
PIL's `Image.MAX_IMAGE_PIXELS` (89.5 M by default); 0 means no limit. Every failure is an `ImageDecodeError`
(an OSError) naming the file.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
ENV_MAX_PIXELS = "VISIONGATES_MAX_PIXELS"
EXIF_ORIENTATION = 0x0112
_PIL_LIMIT_LOCK = threading.Lock()


def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force (0 = none): `max_pixels`, else $VISIONGATES_MAX_PIXELS, else PIL's own."""
    if max_pixels is None:
        env = os.environ.get(ENV_MAX_PIXELS, "").strip()
        if env:
            try:
                max_pixels = int(float(env))
            except ValueError:
                raise ImageDecodeError(f"{ENV_MAX_PIXELS}={env!r} is not a number of pixels") from None
        else:
            max_pixels = Image.MAX_IMAGE_PIXELS or 0
    if max_pixels < 0:
        raise ImageDecodeError(f"the pixel limit must be >= 0 (0: none), not {max_pixels}")
    return int(max_pixels)


def _open(path: Path) -> Image.Image:
    """Image.open with PIL's own bomb check switched off (ours runs next, with the caller's limit)."""
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _white_background(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _scaled_grey(array: np.ndarray, top: float) -> Image.Image:
    grey = np.clip(np.asarray(array, dtype=np.float64), 0.0, top) * (255.0 / top)
    return Image.fromarray(np.rint(grey).astype(np.uint8), "L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """An opened (loaded) PIL image as 8-bit RGB, as the module docstring describes per mode."""
    mode = image.mode
    if mode in ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        return _white_background(image)
    if mode in SIXTEEN_BIT:
        return _scaled_grey(np.asarray(image), 65535.0)
    if mode == "F":
        return _scaled_grey(np.asarray(image), 1.0)
    return image.convert("RGB")


def upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation tag says (the image itself when there is no tag, or it says 1)."""
    if image.getexif().get(EXIF_ORIENTATION, 1) in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


def load_rgb(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """The image file at `path` as an 8-bit RGB PIL image; ImageDecodeError if it cannot be (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(f"image '{path}' does not exist")
    limit = pixel_limit(max_pixels)
    try:
        with _open(path) as image:
            width, height = image.size
            if limit and width * height > limit:
                raise ImageDecodeError(
                    f"image '{path}' is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,} "
                    f"(a decompression-bomb guard); if the file is trusted, raise it with --max-pixels or "
                    f"{ENV_MAX_PIXELS}"
                )
            image.load()
            return to_rgb(upright(image))
    except ImageDecodeError:
        raise
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        SyntaxError,
        EOFError,
        Image.DecompressionBombError,
        MemoryError,
    ) as exc:
        raise ImageDecodeError(f"image '{path}' cannot be decoded ({str(exc) or type(exc).__name__})") from None


def load_array(path: str | Path, channels: int = 3, max_pixels: int | None = None) -> np.ndarray:
    """An image file as an H x W x C uint8 array for a model taking `channels` (3: RGB; 1: PIL's RGB-to-L)."""
    image = load_rgb(path, max_pixels)
    if channels == 1:
        image = image.convert("L")
    elif channels != 3:
        raise ImageDecodeError(f"models taking {channels}-channel images are not supported (only 1 or 3)")
    array = np.asarray(image)
    return array.reshape(*array.shape[:2], channels)
