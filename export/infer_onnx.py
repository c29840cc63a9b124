#!/usr/bin/env python
"""Run an exported model on image files with onnxruntime; needs only the .onnx file.

    python export/infer_onnx.py runs/digits_cbam_resnet18/best.onnx runs/digits_cbam_resnet18/samples/*.png
    python export/infer_onnx.py model.onnx photo.jpg --topk 3 --compare runs/x/best.pth   # PyTorch side by side
    python export/infer_onnx.py runs/onnx/maxim_s1.onnx noisy.png --output restored/        # restoration: images
    python export/infer_onnx.py unet.onnx scan.png --output masks/                          # segmentation: mask PNGs

Classification prints the top-k classes with the label names stored at export; --compare also runs the PyTorch
model (a checkpoint or registry name) on the same inputs and prints both frameworks' top-1 side by side.
"""

import argparse
from pathlib import Path

from visiongates.cli import run_cli


def main() -> int:
    from PIL import Image

    from visiongates.export import OnnxModel, load_source
    from visiongates.export.compare import side_by_side, side_by_side_table
    from visiongates.export.ort_inference import save_mask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("onnx")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--output", default="runs/onnx_inference", help="folder for restored images / masks")
    parser.add_argument("--compare", default=None, metavar="SOURCE",
                        help="classification: also run this checkpoint / registry model in PyTorch, side by side")
    parser.add_argument("--seed", type=int, default=0, help="weights seed when --compare names a registry model")
    args = parser.parse_args()
    model = OnnxModel(args.onnx)
    task = model.info.task
    if task == "classification" and args.compare:
        torch_model, _ = load_source(args.compare, seed=args.seed)
        rows = side_by_side(model, torch_model, args.images, topk=1)
        print(side_by_side_table(rows))
        agree = sum(a.top1 == b.top1 for a, b in rows)
        print(f"onnxruntime and PyTorch agree on top-1 for {agree}/{len(rows)} images")
        return 0 if agree == len(rows) else 1
    if task == "classification":
        for prediction in model.classify(args.images, topk=args.topk):
            print(Path(prediction.path).name + ": " + ", ".join(f"{label} {p:.3f}" for _, label, p in prediction.topk))
        return 0
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for image in args.images:
        if task == "restoration":
            path = output / f"{Path(image).stem}_restored.png"
            Image.fromarray(model.restore(image).squeeze()).save(path)
        else:
            path = save_mask(model.segment(image), output / f"{Path(image).stem}_mask.png")
        print(f"{image} -> {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
