"""Image files for tools that take files: the embedded digits (ONNX inference in `make demo`) and a small
real-photo ImageFolder cut from photos that installed packages ship (README examples that need a folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from visiongates.errors import DataError

from .datasets import DigitsDataset


def write_digit_pngs(output: str | Path, count: int = 10, split: str = "val") -> list[Path]:
    """Write `count` digits of `split` (default: held-out val) as 8x8 RGB PNGs named `<split>_<index>_digit<label>.png`.

    Classes are taken in turn (0, 1, ..., 9, 0, ...), the first unused image of each, so the files span the classes.
    The pixels are exactly those `DigitsDataset` gives the model.
    """
    dataset = DigitsDataset(split)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    by_class = {c: [i for i, t in enumerate(dataset.targets) if t == c] for c in range(len(dataset.classes))}
    paths = []
    for n in range(count):
        label = n % len(by_class)
        index = by_class[label][n // len(by_class)]
        path = output / f"{split}_{index:03d}_digit{label}.png"
        Image.fromarray(dataset.images[index]).save(path)
        paths.append(path)
    return paths


# Real colour photos shipped inside installed packages (scikit-image's data module, scikit-learn's sample images).
SAMPLE_PHOTOS = {
    "astronaut": ("skimage", "astronaut"),
    "cat": ("skimage", "chelsea"),
    "coffee": ("skimage", "coffee"),
    "rocket": ("skimage", "rocket"),
    "temple": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
}
TRAIN_WIDTH = 0.6  # train crops come from the left 60% of each photo, val crops from the rest: no shared pixels


def _load_sample_photo(source: str, name: str) -> np.ndarray:
    if source == "skimage":
        from skimage import data

        return getattr(data, name)()
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def write_sample_photos(
    output: str | Path,
    size: int = 128,
    train_per_class: int = 16,
    val_per_class: int = 6,
    seed: int = 0,
) -> dict[str, dict[str, int]]:
    """Write a small real-photo ImageFolder (`output/{train,val}/<class>/*.jpg`) from photos in installed packages.

    One class per photo (astronaut, cat, coffee, rocket, temple, flower). Each image is a random square crop (side
    50-100% of the largest square that fits the val part), randomly mirrored and resized to `size` px. Train crops
    come from the left 60% of a photo and val crops from the right 40%, so val images share no pixels with train
    images. Returns the number of images per split and class.
    """
    if size < 8 or train_per_class < 1 or val_per_class < 1:
        raise DataError(
            f"need size >= 8 and at least one image per class and split (got size {size}, "
            f"{train_per_class} train / {val_per_class} val per class)"
        )
    output = Path(output)
    rng = np.random.default_rng(seed)
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    for label, (source, name) in SAMPLE_PHOTOS.items():
        photo = _load_sample_photo(source, name)
        height, width = photo.shape[:2]
        split_at = int(width * TRAIN_WIDTH)
        largest = min(height, width - split_at)
        for split, count, (x0, x1) in (
            ("train", train_per_class, (0, split_at)),
            ("val", val_per_class, (split_at, width)),
        ):
            folder = output / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                side = int(rng.uniform(0.5, 1.0) * largest)
                y = int(rng.integers(0, height - side + 1))
                x = int(rng.integers(x0, x1 - side + 1))
                crop = photo[y : y + side, x : x + side]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                image = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BICUBIC)
                image.save(folder / f"{label}_{i:03d}.jpg", quality=95)
            counts[split][label] = count
    return counts
