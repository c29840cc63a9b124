#!/usr/bin/env python
"""int8 quantization of an exported model (onnxruntime.quantization), with its accuracy change and speed-up.

    python export/quantize_onnx.py runs/photos/best.onnx --method static --calibration calib_images/
    python export/quantize_onnx.py model.onnx --method auto --calibration calib/   # static for CNNs, else dynamic
    python export/quantize_onnx.py model.onnx --method dynamic --ops MatMul Gemm         # only these op types
    python export/quantize_onnx.py runs/photos/best.onnx --method static --calibration data/photos/train \
        --calibrate-method entropy --data data/photos --split val                         # + fp32 vs int8 report

static: QDQ, per-channel int8 weights, activation ranges calibrated on the images under --calibration (files,
searched recursively; preprocessed as the model's metadata says). dynamic: int8 weights, activations quantized at
run time (no calibration). Writes <model>.int8.onnx (metadata kept). With --data, reports top-1 of fp32 and int8
on every image of the split, how many predictions changed, batch-1 onnxruntime latency of both and file sizes.
"""

import argparse
import json
from pathlib import Path

from visiongates.cli import run_cli


def main() -> int:
    import torch

    from visiongates.benchmarks.table import markdown_table
    from visiongates.export.quantize import CALIBRATION_METHODS, INT8_COLUMNS, METHODS, compare_int8, quantize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("onnx")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="dynamic",
        help="static (QDQ, calibrated), dynamic, or auto: static for convolutional families and "
        "dynamic for transformer families (default dynamic)",
    )
    parser.add_argument("--calibration", default=None, help="folder of calibration images (static)")
    parser.add_argument("--calibrate-method", choices=sorted(CALIBRATION_METHODS), default="minmax")
    parser.add_argument("--calibration-images", type=int, default=100, help="at most this many (default 100)")
    parser.add_argument("--output", default=None, help="default: <model>.int8.onnx beside the input")
    parser.add_argument("--ops", nargs="+", default=None, help="ONNX op types to quantize (default: all it can)")
    parser.add_argument("--per-channel", action="store_true", help="dynamic: per-channel weights (static always)")
    parser.add_argument("--data", default=None, help="ImageFolder root for the accuracy comparison")
    parser.add_argument("--split", default="val")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = Path(args.onnx)
    output = Path(args.output) if args.output else source.with_suffix(".int8.onnx")
    done = quantize(
        source,
        output,
        args.method,
        args.calibration,
        args.calibrate_method,
        args.calibration_images,
        args.ops,
        args.per_channel,
    )
    calibrated = f", calibrated on {done['calibration_images']} images" if done["method"] == "static" else ""
    if done["calibration_skipped"]:
        calibrated += f" ({done['calibration_skipped']} unreadable skipped)"
    print(
        f"{done['method']} int8 ({done['why']}{calibrated}): wrote {output} "
        f"({output.stat().st_size / 2**20:.1f} MB; fp32 {source.stat().st_size / 2**20:.1f} MB)"
    )
    if args.data:
        result = compare_int8(source, output, Path(args.data) / args.split, runs=args.runs, threads=args.threads)
        result["method"] = done["method"]
        print(markdown_table([result], INT8_COLUMNS))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run_cli(main)
