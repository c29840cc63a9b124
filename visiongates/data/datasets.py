"""Classification datasets: image folders that survive broken files, and the embedded digits default.

Every dataset returns `(image_tensor, label)` or `None` for a sample that could not be decoded; `collate_skip`
drops those and reports how many were skipped, so one corrupt file costs one sample, never the run.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from visiongates_runtime.images import IMAGE_EXTENSIONS, ImageDecodeError, load_rgb

from visiongates.errors import DataError, UnknownClassesError

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "DigitsDataset",
    "build_dataset",
    "class_folders",
    "collate_skip",
    "image_files",
    "sample_seed",
]
Transform = Callable[..., dict]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch: the same on every resume, worker count and rank."""
    return zlib.crc32(f"{seed}:{epoch}:{index}".encode())


def class_folders(root: str | Path) -> list[str]:
    """The class sub-folder names of an ImageFolder root, sorted (hidden folders left out; [] if `root` is none)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: str | Path) -> list[Path]:
    """The image files under `folder` (recursive, sorted), dangling symlinks included: reading one then fails, so it
    is skipped and counted like any unreadable file instead of vanishing from the count."""
    return sorted(
        p
        for p in Path(folder).rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.exists())) and p.suffix.lower() in IMAGE_EXTENSIONS
    )


class AugmentedDataset(torch.utils.data.Dataset):
    """Base: holds the albumentations transform and reseeds it per (epoch, sample) for exact resumption."""

    classes: list[str]
    targets: list[int]

    def __init__(self, transform: Transform | None, seed: int = 0) -> None:
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _load(self, index: int) -> np.ndarray | None:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        image = self._load(index)
        if image is None:
            return None
        if self.transform is not None:
            if hasattr(self.transform, "set_random_seed"):
                self.transform.set_random_seed(sample_seed(self.seed, self.epoch, index))
            image = self.transform(image=image)["image"]
        return image, self.targets[index]


class ImageFolderDataset(AugmentedDataset):
    """`root/<class>/<image>` folders (torchvision's ImageFolder layout), decoded to 8-bit RGB by
    `visiongates_runtime.images.load_rgb` (the decoder inference uses: 16-bit, alpha, CMYK... handled there).

    A file that cannot be decoded (truncated, not an image, over the pixel limit `max_pixels`: see load_rgb) is
    skipped with a warning naming it, and counted by `collate_skip`; missing roots and empty class folders are
    errors that name the folder. With `classes` given (a checkpoint's), a class folder outside them is an error
    naming it, unless `unknown_classes="leave_out"`: then its images are left out and listed in `left_out`
    ({class: image count}), for the caller to report.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Transform | None = None,
        classes: Sequence[str] | None = None,
        seed: int = 0,
        max_pixels: int | None = None,
        unknown_classes: str = "error",
    ) -> None:
        super().__init__(transform, seed)
        self.max_pixels = max_pixels
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset folder '{self.root}' does not exist")
        found = class_folders(self.root)
        if classes is None:
            classes = found
        if not classes:
            raise DataError(f"dataset folder '{self.root}' has no class sub-folders (expected root/<class>/<image>)")
        missing = [c for c in classes if c not in found]
        if missing:
            raise DataError(f"class folder(s) {missing} missing from '{self.root}' (expected classes {list(classes)})")
        unknown = [c for c in found if c not in classes]
        if unknown and unknown_classes != "leave_out":
            raise UnknownClassesError(
                f"class folder(s) {unknown} in '{self.root}' are not among the classes {list(classes)}"
            )
        self.left_out = {name: len(image_files(self.root / name)) for name in unknown}
        self.classes = list(classes)
        self.samples: list[Path] = []
        self.targets = []
        for label, name in enumerate(self.classes):
            files = image_files(self.root / name)
            if not files:
                raise DataError(f"class folder '{self.root / name}' contains no images ({', '.join(IMAGE_EXTENSIONS)})")
            self.samples += files
            self.targets += [label] * len(files)
        self.unreadable: set[Path] = set()  # files found unreadable so far (in this process: see `readable`)

    def readable(self) -> list[Path]:
        """The samples not found unreadable: after a pass over the dataset in this process (num_workers=0), the
        files whose images `collate_skip` kept, in order."""
        return [p for p in self.samples if p not in self.unreadable]

    def _load(self, index: int) -> np.ndarray | None:
        path = self.samples[index]
        try:
            return np.asarray(load_rgb(path, self.max_pixels))
        except ImageDecodeError as exc:
            if path not in self.unreadable:
                self.unreadable.add(path)
                log.warning("skipping unreadable image %s (%s)", path, str(exc).replace(f"image '{path}' ", ""))
            return None


class DigitsDataset(AugmentedDataset):
    """The embedded default: scikit-learn's 1,797 real 8x8 handwritten digits (UCI), as RGB images.

    Split deterministically and stratified: 80% train, 20% val. Images are scaled from 0-16 to 0-255 and replicated
    to three channels; the transform resizes them.
    """

    def __init__(self, split: str, transform: Transform | None = None, seed: int = 0, val_fraction: float = 0.2):
        super().__init__(transform, seed)
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        if split not in ("train", "val"):
            raise DataError(f"digits split must be 'train' or 'val', not '{split}'")
        digits = load_digits()
        indices = np.arange(len(digits.target))
        train_idx, val_idx = train_test_split(indices, test_size=val_fraction, stratify=digits.target, random_state=0)
        chosen = np.sort(train_idx if split == "train" else val_idx)
        images = (digits.images[chosen] * (255.0 / 16.0)).round().astype(np.uint8)
        self.images = np.repeat(images[..., None], 3, axis=-1)
        self.targets = digits.target[chosen].tolist()
        self.classes = [str(d) for d in range(10)]

    def _load(self, index: int) -> np.ndarray:
        return self.images[index]


def build_dataset(
    data: str | Path,
    split: str,
    transform: Transform | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    max_pixels: int | None = None,
    unknown_classes: str = "error",
) -> DigitsDataset | ImageFolderDataset:
    """One split of `data`: the embedded digits for 'digits', else the ImageFolder `<data>/<split>` (`classes`,
    `max_pixels` and `unknown_classes` as `ImageFolderDataset` takes them)."""
    if str(data) == "digits":
        return DigitsDataset(split, transform, seed=seed)
    return ImageFolderDataset(
        Path(data) / split,
        transform,
        classes=classes,
        seed=seed,
        max_pixels=max_pixels,
        unknown_classes=unknown_classes,
    )


def collate_skip(batch: list[tuple[torch.Tensor, int] | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack the decodable samples; return (images, labels, number skipped)."""
    kept = [b for b in batch if b is not None]
    skipped = len(batch) - len(kept)
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
    images = torch.stack([b[0] for b in kept])
    labels = torch.tensor([b[1] for b in kept], dtype=torch.long)
    return images, labels, skipped
