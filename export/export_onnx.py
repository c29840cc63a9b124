#!/usr/bin/env python
"""Export a registry model or a tools/train.py checkpoint to ONNX (dynamo exporter), checked against PyTorch.

    python export/export_onnx.py runs/digits_cbam_resnet18/best.pth             # -> runs/digits_cbam_resnet18/best.onnx
    python export/export_onnx.py das_resnet18 --opset 19 --output runs/onnx/das_resnet18.onnx
    python export/export_onnx.py maxim_s1 --img-size 128 --output runs/onnx/maxim_s1.onnx

Batch is always dynamic; height and width too where the family allows it (see visiongates/export/families.py).
Preprocessing (input size, mean, std, crop_pct), labels and task are stored in the file's metadata_props.
"""

import argparse
from pathlib import Path

from visiongates.cli import run_cli


def main() -> int:
    from visiongates.export import export_source
    from visiongates.export.parity import within_tolerance
    from visiongates.export.sources import is_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("source", help="a registry model name or a checkpoint (.pth) written by tools/train.py")
    parser.add_argument("--output", default=None, help="default: beside the checkpoint, or runs/onnx/<name>.onnx")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18; 19 for deformable conv)")
    parser.add_argument("--img-size", type=int, default=None, help="square input size (default: the model's own)")
    parser.add_argument("--static-size", action="store_true", help="fix height and width (batch stays dynamic)")
    parser.add_argument("--seed", type=int, default=0, help="weights seed for a registry name (recorded)")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the onnxruntime-vs-PyTorch check (run on a copy with perturbed weights)",
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="max abs difference the check accepts (scaled by outputs above 1)"
    )
    args = parser.parse_args()
    output = args.output or (
        Path(args.source).with_suffix(".onnx")
        if is_checkpoint(args.source)
        else Path("runs/onnx") / f"{args.source}.onnx"
    )
    report = export_source(
        args.source,
        output,
        opset=args.opset,
        img_size=args.img_size,
        dynamic_size=False if args.static_size else None,
        seed=args.seed,
        check=not args.no_check,
    )
    info = report.info
    print(
        f"wrote {report.path} ({report.path.stat().st_size / 2**20:.1f} MB) in {report.seconds:.1f} s: "
        f"{info.task} model {info.model_name}, opset {info.opset}, input {'x'.join(map(str, info.input_size))}; "
        f"{report.note}"
    )
    failed = False
    for shape, (diff, peak) in report.parity.items():
        ok = within_tolerance(diff, peak, args.tolerance)
        failed |= not ok
        print(
            f"  onnxruntime vs PyTorch at {shape} (weights perturbed so that every block counts): max abs diff "
            f"{diff:.2e} (outputs up to {peak:.3g}) {'ok' if ok else 'FAILED'}"
        )
    if failed:
        print(f"check FAILED: tolerance {args.tolerance:.0e} (times the output magnitude where it exceeds 1)")
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
