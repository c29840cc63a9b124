"""visiongates-infer: run an exported model on image files with onnxruntime; needs only the .onnx file.

    visiongates-infer model.onnx photo.jpg photos/ "shots/*.png" --topk 3      # classification: top-k per file
    visiongates-infer unet.onnx scans/ --output masks/                         # segmentation: mask PNGs
    visiongates-infer maxim.onnx noisy.png --output restored/                  # restoration: images

Inputs are files, folders (every image inside, recursively) and glob patterns. Masks and restored images keep
each input's path below the inputs' common folder (`a/x.jpg` and `b/x.jpg` -> OUT/a/x_mask.png, OUT/b/x_mask.png;
`x.jpg` beside `x.png` -> x_jpg_mask.png, x_png_mask.png); names that would still collide stop the run before
anything is written. Printed results name each file as given. A file that cannot be read is
reported on its own `error:` line and the others are still predicted; the exit status is then 1 (0 when every
file was predicted, 2 for a bad model or no image at all).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataError, VisionGatesError
from .images import IMAGE_EXTENSIONS
from .model import Model, Prediction, save_mask


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files as given, folders as every image file inside (sorted, recursive), glob patterns expanded (sorted).
    A name that matches nothing stays in the list, so that it is reported as unreadable."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():  # dangling symlinks too: they are then reported as unreadable, not silently dropped
            files += sorted(
                p
                for p in path.rglob("*")
                if (p.is_file() or (p.is_symlink() and not p.exists())) and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        elif not path.exists() and glob.has_magic(item):
            files += [Path(p) for p in sorted(glob.glob(item, recursive=True)) if Path(p).is_file()]
        else:
            files.append(path)
    if not files:
        raise DataError(f"no image files in {', '.join(inputs)}")
    return files


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("onnx", help="a .onnx file written by visiongates' export/export_onnx.py")
    p.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--topk", type=int, default=5, help="classification: classes per image (default 5)")
    p.add_argument("--output", default="runs/onnx_inference", help="folder for masks / restored images")
    p.add_argument("--batch-size", type=int, default=8, help="images per onnxruntime call (default 8)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: its own)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="refuse images with more pixels (decompression-bomb guard; default PIL's 89.5 M; 0: none)",
    )
    p.add_argument("--json", default=None, help="also write every result (no arrays) to this JSON file")
    return p


def output_names(files: Sequence[Path], output: Path, suffix: str) -> dict[str, Path]:
    """Where each input's PNG goes: OUT/<its folder below the inputs' common folder>/<stem>_<suffix>.png, with the
    extension kept in the name (<stem>_<ext>_<suffix>.png) where two inputs share folder and stem. DataError
    naming the inputs if two different files would still get one name (checked before anything is written)."""
    folders = [os.path.abspath(f.parent) for f in files]
    common = os.path.commonpath(folders) if folders else "."
    relative = {str(f): Path(os.path.relpath(os.path.abspath(f), common)) for f in files}
    stems: dict[Path, set[str]] = {}
    for rel in relative.values():
        stems.setdefault(rel.with_suffix(""), set()).add(rel.suffix)
    names: dict[str, Path] = {}
    claimed: dict[Path, str] = {}
    for given, rel in relative.items():
        stem = rel.stem if len(stems[rel.with_suffix("")]) == 1 else f"{rel.stem}_{rel.suffix.lstrip('.')}"
        target = output / rel.parent / f"{stem}_{suffix}.png"
        key = Path(os.path.normcase(os.path.abspath(target)))
        if key in claimed and os.path.abspath(claimed[key]) != os.path.abspath(given):
            raise DataError(
                f"'{claimed[key]}' and '{given}' would both be written to '{target}'; nothing was "
                "written (rename one, or run them separately with different --output folders)"
            )
        claimed[key] = given
        names[given] = target
    return names


def save_image(image: np.ndarray, path: Path) -> Path:
    """An H x W x C uint8 image as a PNG; a unit height or width stays (only a single channel axis is dropped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
    return path


def _describe(result: Prediction, task: str, targets: dict[str, Path]) -> str:
    """One line per predicted file, naming it as given; dense tasks also write their PNG."""
    if task == "classification":
        return result.path + ": " + ", ".join(f"{label} {p:.3f}" for _, label, p in result.topk)
    if task == "segmentation":
        target = save_mask(result.mask, targets[result.path])
    else:
        target = save_image(result.image, targets[result.path])
    return f"{result.path} -> {target}"


def infer(args: argparse.Namespace) -> int:
    if args.topk < 1 or args.batch_size < 1:
        raise DataError("--topk and --batch-size must be at least 1")
    model = Model(args.onnx, threads=args.threads, max_pixels=args.max_pixels)
    files = expand_inputs(args.images)
    output = Path(args.output)
    targets: dict[str, Path] = {}
    if model.info.task != "classification":
        targets = output_names(files, output, "mask" if model.info.task == "segmentation" else "restored")
        output.mkdir(parents=True, exist_ok=True)
    failed, records = 0, []
    for result in model.iter_predict(files, topk=args.topk, batch_size=args.batch_size):
        if result.error:
            failed += 1
            print(f"error: {result.error}", file=sys.stderr)
        else:
            print(_describe(result, model.info.task, targets), flush=True)
        records.append(
            {
                "path": result.path,
                "error": result.error,
                "topk": [{"index": i, "label": label, "probability": p} for i, label, p in result.topk],
            }
        )
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    if failed:
        print(
            f"{failed} of {len(files)} file(s) could not be read; the other {len(files) - failed} were predicted",
            file=sys.stderr,
        )
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """The command line; returns the exit status (`error: ...` and 2 for a bad model or no input)."""
    args = parser(prog).parse_args(argv)
    try:
        return infer(args)
    except VisionGatesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
