"""Restoration datasets: clean images degraded on the fly, or paired input/target folders (official layout).

Both return dicts of CHW float tensors in [0, 1]: {'input', 'target', 'name'}. Training crops are random (with
flips), evaluation crops are central and the synthetic degradation of a held-out image is seeded by its index, so
every evaluation sees the same noisy images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from visiongates_runtime.images import load_rgb

from visiongates.data.datasets import IMAGE_EXTENSIONS, sample_seed
from visiongates.errors import DataError

__all__ = ["list_images", "SyntheticDegradationDataset", "PairedFolderDataset", "crop_transform"]


def list_images(root: str | Path) -> list[Path]:
    """Every image file under `root` (searched recursively, sorted); an error if there is none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"image folder '{root}' contains no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _read_rgb(path: Path) -> np.ndarray:
    """8-bit RGB through visiongates' one decoder (an ImageDecodeError, a DataError, if unreadable)."""
    return np.array(load_rgb(path))


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def crop_transform(size: int | None, train: bool) -> A.Compose:
    """Random crop + flips (train) or centre crop (eval); images smaller than `size` are reflect-padded first.
    The same crop is applied to 'image' and 'target' (paired data)."""
    steps: list[A.BasicTransform] = []
    if size:
        steps.append(A.PadIfNeeded(min_height=size, min_width=size, border_mode=4))  # cv2.BORDER_REFLECT_101
        steps.append(A.RandomCrop(size, size) if train else A.CenterCrop(size, size))
    if train:
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    return A.Compose(steps, additional_targets={"target": "image"})


class SyntheticDegradationDataset(torch.utils.data.Dataset):
    """Clean photos from an image folder; the input is `degrade(target)` (noise, blur, ...)."""

    def __init__(
        self,
        root: str | Path,
        degrade: Any,
        crop_size: int | None,
        train: bool,
        seed: int = 0,
        max_images: int | None = None,
    ):
        self.files = list_images(root)[:max_images]
        self.degrade, self.train, self.seed = degrade, train, seed
        self.transform = crop_transform(crop_size, train)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        seed = sample_seed(self.seed, self.epoch if self.train else -1, index)
        self.transform.set_random_seed(seed)
        target = _to_tensor(self.transform(image=_read_rgb(path))["image"])
        generator = torch.Generator().manual_seed(seed)
        return {"input": self.degrade(target, generator), "target": target, "name": path.stem}


class PairedFolderDataset(torch.utils.data.Dataset):
    """`root/input/<name>` and `root/target/<name>` pairs (the layout official run_eval.py reads)."""

    def __init__(
        self, root: str | Path, crop_size: int | None, train: bool, seed: int = 0, max_images: int | None = None
    ):
        root = Path(root)
        self.inputs = list_images(root / "input")[:max_images]
        self.targets = [root / "target" / p.relative_to(root / "input") for p in self.inputs]
        missing = [str(p) for p in self.targets if not p.is_file()]
        if missing:
            raise DataError(f"{len(missing)} target image(s) missing, e.g. '{missing[0]}'")
        self.train, self.seed, self.epoch = train, seed, 0
        self.transform = crop_transform(crop_size, train)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        self.transform.set_random_seed(sample_seed(self.seed, self.epoch if self.train else -1, index))
        inp, tgt = _read_rgb(self.inputs[index]), _read_rgb(self.targets[index])
        if inp.shape != tgt.shape:
            raise DataError(f"'{self.inputs[index]}' and its target differ in size: {inp.shape} vs {tgt.shape}")
        out = self.transform(image=inp, target=tgt)
        return {"input": _to_tensor(out["image"]), "target": _to_tensor(out["target"]), "name": self.inputs[index].stem}
