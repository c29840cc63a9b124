#!/usr/bin/env python
"""Run an exported model on image files with onnxruntime; needs only the .onnx file and visiongates_runtime.

    python export/infer_onnx.py runs/digits_cbam_resnet18/best.onnx runs/digits_cbam_resnet18/samples/*.png
    python export/infer_onnx.py model.onnx photos/ "more/*.jpg" --topk 3                  # folders and globs too
    python export/infer_onnx.py model.onnx photo.jpg --compare runs/x/best.pth             # PyTorch side by side
    python export/infer_onnx.py runs/onnx/maxim_s1.onnx noisy.png --output restored/       # restoration: images
    python export/infer_onnx.py unet.onnx scan.png --output masks/                         # segmentation: mask PNGs

Without --compare this is the torch-free runtime's command (`visiongates-infer`, runtime/visiongates_runtime/cli.py):
it imports neither torch nor timm, and a file that cannot be read gets its own `error:` line while the others are
still predicted. --compare also runs the PyTorch model (a checkpoint or registry name) on the same inputs and
prints both frameworks' top-1 side by side (that path needs the whole visiongates stack).
"""

import sys


def compare() -> int:
    import argparse

    from visiongates_runtime.cli import expand_inputs

    from visiongates.export import OnnxModel, load_source
    from visiongates.export.compare import check_same_model, side_by_side, side_by_side_table

    parser = argparse.ArgumentParser(description="onnxruntime and PyTorch top-1 side by side")
    parser.add_argument("onnx")
    parser.add_argument("images", nargs="+")
    parser.add_argument(
        "--compare",
        required=True,
        metavar="SOURCE",
        help="classification: also run this checkpoint / registry model in PyTorch, side by side",
    )
    parser.add_argument("--seed", type=int, default=0, help="weights seed when --compare names a registry model")
    parser.add_argument("--max-pixels", type=int, default=None, help="decompression-bomb guard (default PIL's)")
    args, _ = parser.parse_known_args()
    model = OnnxModel(args.onnx, max_pixels=args.max_pixels)
    if model.info.task != "classification":
        from visiongates.errors import DataError

        raise DataError("--compare compares classifiers; run without it for segmentation and restoration models")
    torch_model, torch_info = load_source(args.compare, seed=args.seed)
    check_same_model(model.info, torch_info, args.compare)
    rows = side_by_side(model, torch_model, expand_inputs(args.images), topk=1)
    print(side_by_side_table(rows))
    compared = [(a, b) for a, b in rows if a.ok]
    agree = sum(a.top1 == b.top1 for a, b in compared)
    skipped = len(rows) - len(compared)
    print(
        f"onnxruntime and PyTorch agree on top-1 for {agree}/{len(compared)} images"
        + (f" ({skipped} unreadable skipped)" if skipped else "")
    )
    return 0 if compared and agree == len(compared) else 1


if __name__ == "__main__":
    if any(arg == "--compare" or arg.startswith("--compare=") for arg in sys.argv[1:]):
        from visiongates.cli import run_cli

        run_cli(compare)
    from visiongates_runtime.cli import main

    sys.exit(main(prog="infer_onnx.py"))
