#!/usr/bin/env python
"""Validate an exported model with onnxruntime against PyTorch: max abs difference, and top-1 agreement on images.

    python export/validate_onnx.py runs/digits_cbam_resnet18/best.onnx
    python export/validate_onnx.py runs/photos/best.onnx --data data/photos --split val
    python export/validate_onnx.py runs/onnx/das_resnet18.onnx --source das_resnet18 --seed 0

The PyTorch side is rebuilt from the source the file's metadata records (a checkpoint, or a registry name and
seed) unless --source names another.
"""

import argparse
import json
from pathlib import Path

from visiongates.cli import run_cli


def main() -> int:
    from visiongates.export import OnnxModel, load_source
    from visiongates.export.compare import folder_agreement
    from visiongates.export.parity import check_parity, within_tolerance
    from visiongates.export.sources import recorded_source

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("onnx")
    parser.add_argument("--source", default=None, help="checkpoint or registry name (default: from the metadata)")
    parser.add_argument("--seed", type=int, default=None, help="weights seed for a registry name (default: recorded)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--data", default=None, help="ImageFolder root: also compare top-1 on every image of --split")
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    onnx_model = OnnxModel(args.onnx)
    info = onnx_model.info
    seed = args.seed if args.seed is not None else (info.seed or 0)
    model, torch_info = load_source(args.source or recorded_source(info), seed=seed)
    failed = False
    for shape, (diff, peak) in check_parity(model, onnx_model.session, info).items():
        ok = within_tolerance(diff, peak, args.tolerance)
        failed |= not ok
        print(f"{shape:>16}: max abs diff {diff:.2e} (outputs up to {peak:.3g}) {'ok' if ok else 'FAILED'}")
    if args.data:
        result = folder_agreement(onnx_model, model, torch_info, Path(args.data) / args.split)
        print(json.dumps(result, indent=1))
        failed |= result["top1_agree"] != result["images"]
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)
