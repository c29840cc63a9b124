"""Coins on real photos: a small binary segmentation set with exact masks, built from images scikit-image ships.

Nothing is downloaded. Foregrounds are the 24 coins of `skimage.data.coins()`, cut out by
`coins_coco.coin_cutouts` (the one source of coins: scikit-image's coins recipe, see there). Backgrounds are grey
crops of real photos in `skimage.data` (or of any image folder, e.g. the shared hymenoptera photos). A sample pastes
1-3 coins (random scale, rotation, gain, position) and up to `distractors` discs cut from other photos (round, but
not coins) onto a background crop. The mask is exact by
construction: it is the set of pixels last replaced by coin pixels, whatever the cut-out's own accuracy.

Held-out images use other coins (every 4th) and crops from another part of each photo (its right 30%), and are fixed by
their own seed, so every run is scored on the same images.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visiongates.errors import DataError

from .coins_coco import Cutout, coin_cutouts
from .datasets import sample_seed

__all__ = ["CoinSegmentationDataset", "grey_coins", "load_backgrounds", "BACKGROUNDS"]

BACKGROUNDS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "clock",
    "coffee",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "rocket",
    "text",
    "cell",
)
HELD_OUT_FRACTION = 0.3  # right part of each photo kept for held-out crops


def _grey(image: np.ndarray) -> np.ndarray:
    from skimage import color, util

    if image.ndim == 3:
        image = color.rgb2gray(image[..., :3])
    return util.img_as_float32(image)


@functools.lru_cache(maxsize=1)
def grey_coins() -> tuple[Cutout, ...]:
    """The coins of `coins_coco.coin_cutouts` with 2 px of the photo around each, as grey patches in [0, 1]."""
    return tuple(Cutout(_grey(coin.image), coin.mask) for coin in coin_cutouts(margin=2))


@functools.lru_cache(maxsize=4)
def load_backgrounds(folder: str | None = None) -> tuple[np.ndarray, ...]:
    """Grey photos in [0, 1]: skimage.data's (default) or every image of `folder` (searched recursively)."""
    if folder is None:
        from skimage import data

        return tuple(_grey(getattr(data, name)()) for name in BACKGROUNDS)
    from visiongates_runtime.images import load_rgb

    from .datasets import IMAGE_EXTENSIONS

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"background folder '{folder}' holds no images")
    images = []
    for path in files:
        images.append(np.asarray(load_rgb(path).convert("L"), dtype=np.float32) / 255.0)
    return tuple(images)


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-averaged (shrinking) or bilinear (enlarging) resize to (H, W)."""
    import cv2

    shrink = shape[0] < image.shape[0]
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _transformed(cutout: Cutout, diameter: float, rng: np.random.Generator) -> Cutout:
    """The cut-out scaled to about `diameter` pixels, rotated and flipped at random (one affine warp; the mask is
    warped with nearest-neighbour sampling)."""
    import cv2

    native = 2.0 * np.sqrt(cutout.mask.sum() / np.pi)
    scale = diameter / native
    h, w = cutout.mask.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(0, 360), scale)
    side = int(np.ceil(np.hypot(h, w) * scale)) + 1  # holds the scaled patch at any angle
    matrix[:, 2] += side / 2 - np.array([w / 2, h / 2])
    image = cv2.warpAffine(cutout.image, matrix, (side, side), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(cutout.mask.astype(np.uint8), matrix, (side, side), flags=cv2.INTER_NEAREST) > 0
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return Cutout(image, mask)


def _paste(canvas: np.ndarray, labels: np.ndarray, piece: Cutout, label: int, rng: np.random.Generator) -> None:
    """Paste the masked pixels of `piece` at a random place (may overhang the border); write `label` there."""
    h, w = canvas.shape
    ph, pw = piece.mask.shape
    top, left = int(rng.integers(-ph // 3, h - 2 * ph // 3)), int(rng.integers(-pw // 3, w - 2 * pw // 3))
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + ph, h), min(left + pw, w)
    if y1 <= y0 or x1 <= x0:
        return
    mask = piece.mask[y0 - top : y1 - top, x0 - left : x1 - left]
    canvas[y0:y1, x0:x1][mask] = piece.image[y0 - top : y1 - top, x0 - left : x1 - left][mask]
    labels[y0:y1, x0:x1][mask] = label


class CoinSegmentationDataset(torch.utils.data.Dataset):
    """Coins pasted on real photos; samples are {'image': [3, H, W] in [0, 1], 'mask': [H, W] long (1 = coin)}.

    split: 'train' (new composites each epoch, from the training coins and photo parts) or 'val' (fixed images from
    the held-out coins and photo parts). size: output side (int) or (H, W). length: samples per epoch.
    max_coins / distractors: at most this many coins (at least one) / non-coin discs per image.
    background_dir: take backgrounds from this image folder instead of skimage.data.
    """

    def __init__(
        self,
        split: str = "train",
        size: int | tuple[int, int] = 64,
        length: int = 512,
        seed: int = 0,
        max_coins: int = 3,
        distractors: int = 1,
        background_dir: str | Path | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split, self.length, self.seed = split, length, seed
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.max_coins, self.distractors = max_coins, distractors
        held_out = split == "val"
        self.coins = [c for i, c in enumerate(grey_coins()) if (i % 4 == 3) == held_out]
        self.backgrounds = [
            self._part(b, held_out)
            for b in load_backgrounds(str(background_dir) if background_dir is not None else None)
        ]
        self.epoch = 0

    @staticmethod
    def _part(image: np.ndarray, held_out: bool) -> np.ndarray:
        cut = int(round(image.shape[1] * (1.0 - HELD_OUT_FRACTION)))
        return image[:, cut:] if held_out else image[:, :cut]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        photo = self.backgrounds[rng.integers(len(self.backgrounds))]
        h, w = self.size
        side = rng.uniform(0.4, 1.0) * min(photo.shape[0], photo.shape[1] * h / w)
        ch, cw = max(int(side), 8), max(int(side * w / h), 8)
        ch, cw = min(ch, photo.shape[0]), min(cw, photo.shape[1])
        y, x = rng.integers(photo.shape[0] - ch + 1), rng.integers(photo.shape[1] - cw + 1)
        crop = _resize(photo[y : y + ch, x : x + cw], (h, w))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.clip(crop * rng.uniform(0.6, 1.2) + rng.uniform(-0.15, 0.15), 0, 1).astype(np.float32)

    def _disc(self, diameter: float, rng: np.random.Generator) -> Cutout:
        """A non-coin round object: a disc (or ellipse) cut from another photo."""
        photo = self.backgrounds[rng.integers(len(self.backgrounds))]
        radius = max(diameter / 2, 2.0)
        ry, rx = radius * rng.uniform(0.8, 1.2), radius * rng.uniform(0.8, 1.2)
        ph, pw = int(2 * ry) + 1, int(2 * rx) + 1
        y, x = rng.integers(photo.shape[0] - ph + 1), rng.integers(photo.shape[1] - pw + 1)
        yy, xx = np.mgrid[:ph, :pw]
        mask = ((yy - ph / 2 + 0.5) / ry) ** 2 + ((xx - pw / 2 + 0.5) / rx) ** 2 <= 1.0
        return Cutout(photo[y : y + ph, x : x + pw].copy(), mask)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Grey image [H, W] float32 in [0, 1] and mask [H, W] uint8 of sample `index` (deterministic per epoch)."""
        epoch = self.epoch if self.split == "train" else -1
        rng = np.random.default_rng(sample_seed(self.seed, epoch, index))
        canvas = self._background(rng)
        labels = np.zeros(self.size, dtype=np.uint8)
        side = min(self.size)
        for _ in range(int(rng.integers(0, self.distractors + 1))):
            _paste(canvas, labels, self._disc(rng.uniform(0.2, 0.45) * side, rng), 0, rng)
        for _ in range(int(rng.integers(1, self.max_coins + 1))):
            coin = _transformed(self.coins[rng.integers(len(self.coins))], rng.uniform(0.22, 0.45) * side, rng)
            gain, offset = rng.uniform(0.6, 1.1), rng.uniform(-0.2, 0.1)
            _paste(canvas, labels, Cutout(np.clip(coin.image * gain + offset, 0, 1), coin.mask), 1, rng)
        noise = rng.normal(0.0, rng.uniform(0.0, 0.03), canvas.shape).astype(np.float32)
        return np.clip(canvas + noise, 0, 1), labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.sample(index)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image))[None].expand(3, -1, -1).contiguous(),
            "mask": torch.from_numpy(mask.astype(np.int64)),
            "name": f"{self.split}_{index:04d}",
        }
