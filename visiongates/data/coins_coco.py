"""An embedded detection and segmentation set, built at run time from real photos that scikit-image ships.

How it is made (nothing is downloaded):
- Objects: the 24 coins of `skimage.data.coins()` (a real photo of Greek coins). Their exact masks come from two
  intensity thresholds (dark < 30: background seeds, bright > 150: coin seeds), a watershed on the Sobel gradient
  between the seeds, hole filling, a radius-2 opening and connected-component labelling. Every coin is one component;
  each is cut out with its mask.
- Scenes: a random crop of another real photo from `skimage.data` (astronaut, chelsea, coffee, rocket, textures...),
  resized to the output size, with 2-7 coins pasted at random positions without overlap, each rotated by a random
  angle, rescaled to a random diameter and given a random brightness / colour tint.
- Labels: a pasted pixel belongs to a coin exactly when the coin's transformed mask is set there (the paste uses the
  same binary mask), so boxes, instance masks (COCO RLE) and the semantic map (0 background, 1 coin) are exact.
- Held-out split: train scenes use 18 coins, val scenes the other 6 (every 4th coin); backgrounds are shared, crops
  differ. Everything is a pure function of the seed.

Layouts written by `build_coins_set`: 'coins' (train/, val/, annotations/instances_{train,val}.json, semantic/...),
'coco' (COCO 2017 folder names) and 'ade20k' (ADEChallengeData2016 names), the last two as stand-ins for tests.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

CLASSES = ("coin",)
BACKGROUNDS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "grass",
    "brick",
    "gravel",
    "camera",
    "moon",
    "clock",
)
LAYOUTS = ("coins", "coco", "ade20k")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CoinsSpec:
    """What a generated set holds; a cached set is reused only when its spec matches."""

    num_train: int = 400
    num_val: int = 100
    image_size: int = 128
    min_coins: int = 2
    max_coins: int = 7
    min_diameter: float = 0.15
    max_diameter: float = 0.35
    seed: int = 0
    layout: str = "coins"
    version: int = FORMAT_VERSION


class Cutout(NamedTuple):
    """A grey image patch and the boolean mask of the object in it."""

    image: np.ndarray
    mask: np.ndarray


@lru_cache(maxsize=4)
def coin_cutouts(margin: int = 0) -> tuple[Cutout, ...]:
    """The 24 coins of skimage's `coins` photo, row by row: (grey patch uint8 [h, w], mask bool [h, w]) over each
    coin's box grown by `margin` pixels of the photo (clipped to it). The one source of coins for every coins set."""
    from scipy import ndimage as ndi
    from skimage import data, filters, measure, morphology, segmentation

    image = data.coins()
    markers = np.zeros_like(image, dtype=np.int32)
    markers[image < 30] = 1
    markers[image > 150] = 2
    foreground = segmentation.watershed(filters.sobel(image), markers) == 2
    foreground = ndi.binary_fill_holes(foreground)
    foreground = morphology.opening(foreground, morphology.disk(2))
    labels = measure.label(foreground)
    cutouts = []
    for region in sorted(measure.regionprops(labels), key=lambda r: (r.bbox[0] // 60, r.bbox[1])):
        if region.area < 500:
            continue
        r0, c0, r1, c1 = region.bbox
        r0, c0 = max(r0 - margin, 0), max(c0 - margin, 0)
        r1, c1 = min(r1 + margin, image.shape[0]), min(c1 + margin, image.shape[1])
        cutouts.append(Cutout(image[r0:r1, c0:c1].copy(), labels[r0:r1, c0:c1] == region.label))
    if len(cutouts) != 24:
        raise RuntimeError(f"expected 24 coins in skimage.data.coins(), found {len(cutouts)}")
    return tuple(cutouts)


@lru_cache(maxsize=1)
def background_photos() -> list[np.ndarray]:
    """The background photos as RGB uint8 arrays."""
    from skimage import data

    photos = []
    for name in BACKGROUNDS:
        photo = np.asarray(getattr(data, name)())
        if photo.ndim == 2:
            photo = np.repeat(photo[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(photo[..., :3]))
    return photos


def split_coins(split: str) -> list[int]:
    """Indices of the coins a split uses: val every 4th coin, train the rest."""
    return [i for i in range(24) if (i % 4 == 3) == (split == "val")]


def _random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    photos = background_photos()
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.4, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.BILINEAR)
    out = np.asarray(crop)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out.copy()


def _transform_coin(rng: np.random.Generator, index: int, diameter: float) -> tuple[np.ndarray, np.ndarray]:
    """One coin rotated, rescaled to about `diameter` pixels and tinted: (RGB patch, exact mask)."""
    patch, mask = coin_cutouts()[index]
    angle = float(rng.uniform(0, 360))
    scale = diameter / max(patch.shape)
    size = (max(4, round(patch.shape[1] * scale)), max(4, round(patch.shape[0] * scale)))
    gray = Image.fromarray(patch).rotate(angle, Image.BILINEAR, expand=True)
    alpha = Image.fromarray(mask.astype(np.uint8) * 255).rotate(angle, Image.BILINEAR, expand=True)
    gray = np.asarray(gray.resize(size, Image.BILINEAR), dtype=np.float32)
    keep = np.asarray(alpha.resize(size, Image.BILINEAR)) >= 128
    rows, cols = np.nonzero(keep)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    tint = rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, size=3)
    rgb = np.clip(gray[r0:r1, c0:c1, None] * tint, 0, 255).astype(np.uint8)
    return rgb, keep[r0:r1, c0:c1]


def render_scene(rng: np.random.Generator, spec: CoinsSpec, coins: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One scene: RGB image [S, S, 3] and one full-size boolean mask per pasted coin."""
    size = spec.image_size
    image = _random_background(rng, size)
    occupied = np.zeros((size, size), dtype=bool)
    masks: list[np.ndarray] = []
    for _ in range(int(rng.integers(spec.min_coins, spec.max_coins + 1))):
        diameter = rng.uniform(spec.min_diameter, spec.max_diameter) * size
        rgb, mask = _transform_coin(rng, coins[rng.integers(len(coins))], diameter)
        h, w = mask.shape
        for _attempt in range(30):
            y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            if not (occupied[y : y + h, x : x + w] & mask).any():
                break
        else:
            continue
        full = np.zeros((size, size), dtype=bool)
        full[y : y + h, x : x + w] = mask
        region = image[y : y + h, x : x + w]
        region[mask] = rgb[mask]
        occupied[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] |= True
        masks.append(full)
    return image, masks


def _coco_annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    rows, cols = np.nonzero(mask)
    x0, y0, x1, y1 = int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "iscrowd": 0,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": int(mask.sum()),
        "segmentation": rle,
    }


def _paths(layout: str, split: str) -> dict[str, str]:
    """Relative paths of one split's images, COCO json, semantic images and semantic labels for a layout."""
    if layout == "coco":
        return {
            "images": f"{split}2017",
            "ann": f"annotations/instances_{split}2017.json",
            "sem_images": f"{split}2017",
            "sem_labels": f"semantic/{split}2017",
        }
    if layout == "ade20k":
        name = {"train": "training", "val": "validation"}[split]
        return {
            "images": f"ADEChallengeData2016/images/{name}",
            "ann": f"annotations/instances_{split}.json",
            "sem_images": f"ADEChallengeData2016/images/{name}",
            "sem_labels": f"ADEChallengeData2016/annotations/{name}",
        }
    return {
        "images": split,
        "ann": f"annotations/instances_{split}.json",
        "sem_images": split,
        "sem_labels": f"semantic/{split}",
    }


def _coco_class_names() -> tuple[str, ...]:
    """COCO's 80 class names in mmdet's order ('person' first); mmdet is imported only for the 'coco' layout."""
    from mmdet.datasets import CocoDataset

    return tuple(CocoDataset.METAINFO["classes"])


def _write_split(root: Path, spec: CoinsSpec, split: str, count: int, category_names: tuple[str, ...]) -> None:
    paths = _paths(spec.layout, split)
    rng = np.random.default_rng([spec.seed, 0 if split == "train" else 1])
    for key in ("images", "sem_images", "sem_labels"):
        (root / paths[key]).mkdir(parents=True, exist_ok=True)
    # ADE20K labels use 0 for 'other' (ignored by reduce_zero_label): write background 1, coin 2 there.
    label_offset = 1 if spec.layout == "ade20k" else 0
    images, annotations = [], []
    for i in range(count):
        image, masks = render_scene(rng, spec, split_coins(split))
        name = f"{split}_{i:05d}"
        Image.fromarray(image).save(root / paths["images"] / f"{name}.jpg", quality=95)
        semantic = np.full(image.shape[:2], label_offset, dtype=np.uint8)
        for mask in masks:
            semantic[mask] = 1 + label_offset
        Image.fromarray(semantic).save(root / paths["sem_labels"] / f"{name}.png")
        images.append({"id": i + 1, "file_name": f"{name}.jpg", "height": image.shape[0], "width": image.shape[1]})
        for mask in masks:
            annotations.append(_coco_annotation(mask, len(annotations) + 1, i + 1, 1))
    coco = {
        "info": {"description": "visiongates embedded coins set (see visiongates/data/coins_coco.py)"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(category_names)],
    }
    ann = root / paths["ann"]
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(coco))


def build_coins_set(root: str | os.PathLike, spec: CoinsSpec | None = None, **overrides) -> Path:
    """Write (or reuse, when the spec matches) the coins set under `root`; safe to call from several processes.

    The COCO json names the class 'coin', except in the 'coco' layout, which lists COCO's 80 categories and labels
    coins 'person' (id 1), so that configs and COCO metrics built for COCO's 80 classes read it unchanged (a
    prediction of any of the 80 labels maps to a category id).
    """
    spec = spec or CoinsSpec()
    if overrides:
        spec = CoinsSpec(**{**asdict(spec), **overrides})
    if spec.layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {spec.layout!r}")
    root = Path(root).expanduser()
    stamp = root / "spec.json"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and json.loads(stamp.read_text()) == asdict(spec):
            return root
        if root.exists():
            shutil.rmtree(root)
        tmp = root.with_name(f".{root.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        names = _coco_class_names() if spec.layout == "coco" else CLASSES
        _write_split(tmp, spec, "train", spec.num_train, names)
        _write_split(tmp, spec, "val", spec.num_val, names)
        (tmp / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
        os.replace(tmp, root)
    return root


def default_root() -> Path:
    """Where the embedded set is cached: $VISIONGATES_DATA/coins, else data/coins (the configs' data_root)."""
    return Path(os.environ.get("VISIONGATES_DATA") or "data").expanduser() / "coins"


def main(argv: list[str] | None = None) -> None:
    """CLI: python -m visiongates.data.coins_coco [--root DIR] [--layout coins|coco|ade20k] [--num-train N] ..."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(default_root()))
    parser.add_argument("--layout", default="coins", choices=LAYOUTS)
    parser.add_argument("--num-train", type=int, default=CoinsSpec.num_train)
    parser.add_argument("--num-val", type=int, default=CoinsSpec.num_val)
    parser.add_argument("--image-size", type=int, default=CoinsSpec.image_size)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = build_coins_set(
        args.root,
        layout=args.layout,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=args.image_size,
        seed=args.seed,
    )
    print(root)


if __name__ == "__main__":
    main()
