"""visiongates-infer: run an exported model on image files with onnxruntime; needs only the .onnx file.

    visiongates-infer model.onnx photo.jpg photos/ "shots/*.png" --topk 3      # classification: top-k per file
    visiongates-infer unet.onnx scans/ --output masks/                         # segmentation: mask PNGs
    visiongates-infer maxim.onnx noisy.png --output restored/                  # restoration: images

Inputs are files, folders (every image inside, recursively) and glob patterns. A file that cannot be read is
reported on its own `error:` line and the others are still predicted; the exit status is then 1 (0 when every
file was predicted, 2 for a bad model or no image at all).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections.abc import Sequence
from pathlib import Path

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
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
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
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images with more pixels (decompression-bomb guard; default PIL's 89.5 M; 0: none)")
    p.add_argument("--json", default=None, help="also write every result (no arrays) to this JSON file")
    return p


def _describe(result: Prediction, task: str, output: Path) -> str:
    """One line per predicted file; dense tasks also write their PNG."""
    if task == "classification":
        return Path(result.path).name + ": " + ", ".join(f"{label} {p:.3f}" for _, label, p in result.topk)
    if task == "segmentation":
        target = save_mask(result.mask, output / f"{Path(result.path).stem}_mask.png")
    else:
        target = output / f"{Path(result.path).stem}_restored.png"
        Image.fromarray(result.image.squeeze()).save(target)
    return f"{result.path} -> {target}"


def infer(args: argparse.Namespace) -> int:
    if args.topk < 1 or args.batch_size < 1:
        raise DataError("--topk and --batch-size must be at least 1")
    model = Model(args.onnx, threads=args.threads, max_pixels=args.max_pixels)
    files = expand_inputs(args.images)
    output = Path(args.output)
    if model.info.task != "classification":
        output.mkdir(parents=True, exist_ok=True)
    failed, records = 0, []
    for result in model.iter_predict(files, topk=args.topk, batch_size=args.batch_size):
        if result.error:
            failed += 1
            print(f"error: {result.error}", file=sys.stderr)
        else:
            print(_describe(result, model.info.task, output), flush=True)
        records.append({"path": result.path, "error": result.error,
                        "topk": [{"index": i, "label": label, "probability": p} for i, label, p in result.topk]})
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    if failed:
        print(f"{failed} of {len(files)} file(s) could not be read; the other {len(files) - failed} were predicted",
              file=sys.stderr)
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
