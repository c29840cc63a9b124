#!/usr/bin/env python
"""Evaluate a tools/train.py checkpoint: top-1/top-5 (top-5 with more than 5 classes), per-class accuracy, confusion.

python tools/eval.py runs/digits_cbam_resnet18/best.pth --data digits --output runs/digits_cbam_resnet18/eval
"""

import argparse
import json

from visiongates.cli import run_cli


def main() -> None:
    from visiongates.engine.evaluate import evaluate_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="digits", help="'digits' or an ImageFolder root holding the split folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--output", default=None, help="folder for metrics.json and confusion.png")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--known-classes-only",
        action="store_true",
        help="leave out class folders the checkpoint does not know (default: an error naming them)",
    )
    args = parser.parse_args()
    result = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        args.split,
        args.output,
        args.batch_size,
        args.workers,
        args.device,
        known_classes_only=args.known_classes_only,
    )
    top5 = f"  top-5 {result['top5']:.2f}%" if "top5" in result else ""
    left_out = ", ".join(f"{name}: {count}" for name, count in result["left_out"].items())
    print(
        f"top-1 {result['top1']:.2f}%{top5}  on {result['images']} images"
        + (f" ({result['skipped']} unreadable skipped)" if result["skipped"] else "")
        + (f"; left out unknown class folder(s) ({left_out} images)" if left_out else "")
    )
    print(json.dumps({"per_class_top1": result["per_class_top1"]}, indent=1))


if __name__ == "__main__":
    run_cli(main)
