"""Image files from the embedded digits, for tools that take files (e.g. ONNX inference in `make demo`)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

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
