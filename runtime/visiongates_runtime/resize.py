"""Image resizing in numpy that matches OpenCV's `cv2.resize` bit for bit on uint8 images, so the runtime feeds a
model exactly the pixels visiongates' albumentations pipelines (which call OpenCV) fed it in validation.

`resize_linear` is OpenCV's INTER_LINEAR for 8-bit images (imgproc/src/resize.cpp): half-pixel source coordinates,
weights rounded to 11-bit fixed point, a horizontal pass in integers, a vertical pass that keeps the top 16 bits
of each product and rounds the sum; an exact 2x reduction on both axes is OpenCV's INTER_AREA average instead (it
switches to it itself). `resize_nearest` is INTER_NEAREST (source index floor(dst * src / dst_size)).
"""

from __future__ import annotations

import numpy as np

COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS


def _linear_taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: the two source indices and their fixed-point weights (int32), as OpenCV computes them.
    OpenCV moves out-of-range taps to the border with weights (1, 0) along x only (`clamp_weights`); along y it
    keeps the weights and clips the row indices."""
    scale = 1.0 / (dst / src)  # OpenCV: scale_x = 1. / inv_scale_x, inv_scale_x = (double)dsize.width / ssize.width
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low = s < 0
        f[low], s[low] = 0.0, 0
        high = s >= src - 1
        f[high], s[high] = 0.0, src - 1
    w1 = np.rint(f * np.float32(COEF_SCALE)).astype(np.int32)  # saturate_cast<short>: round half to even
    w0 = np.rint((np.float32(1.0) - f) * np.float32(COEF_SCALE)).astype(np.int32)
    return np.clip(s, 0, src - 1), np.clip(s + 1, 0, src - 1), np.stack([w0, w1])


def _area_half(image: np.ndarray) -> np.ndarray:
    """OpenCV's INTER_AREA for an exact 2x reduction of uint8: (sum of each 2x2 block + 2) >> 2."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[: 2 * h, : 2 * w].astype(np.int32).reshape(h, 2, w, 2, -1)
    return ((blocks.sum(axis=(1, 3)) + 2) >> 2).astype(np.uint8)


def resize_linear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an H x W (x C) uint8 image to `height` x `width`, equal to
    `cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)`."""
    if image.dtype != np.uint8:
        raise TypeError(f"resize_linear takes uint8 images, not {image.dtype}")
    squeeze = image.ndim == 2
    img = image[..., None] if squeeze else image
    src_h, src_w = img.shape[:2]
    if (src_h, src_w) == (height, width):
        return image.copy()
    if src_h == 2 * height and src_w == 2 * width and img.shape[2] != 2:
        out = _area_half(img)
        return out[..., 0] if squeeze else out
    x0, x1, wx = _linear_taps(src_w, width, clamp_weights=True)
    y0, y1, wy = _linear_taps(src_h, height, clamp_weights=False)
    # horizontal pass in int32: value * 2048
    rows = img.astype(np.int32)
    horizontal = rows[:, x0] * wx[0][None, :, None] + rows[:, x1] * wx[1][None, :, None]
    # vertical pass: ((b0 * (S0 >> 4)) >> 16) + ((b1 * (S1 >> 4)) >> 16), then (+2) >> 2
    shifted = horizontal >> 4
    top = (wy[0][:, None, None] * shifted[y0]) >> 16
    bottom = (wy[1][:, None, None] * shifted[y1]) >> 16
    out = np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)
    return out[..., 0] if squeeze else out


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize, equal to `cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)`."""
    src_h, src_w = image.shape[:2]
    ys = np.minimum(np.floor(np.arange(height) * (1.0 / (height / src_h))).astype(np.int64), src_h - 1)
    xs = np.minimum(np.floor(np.arange(width) * (1.0 / (width / src_w))).astype(np.int64), src_w - 1)
    return image[ys[:, None], xs[None, :]]
