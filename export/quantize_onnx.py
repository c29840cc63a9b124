#!/usr/bin/env python
"""Dynamic int8 quantization of an exported model (onnxruntime.quantization), with its accuracy change and speed-up.

    python export/quantize_onnx.py runs/photos/best.onnx --data data/photos --split val
    python export/quantize_onnx.py model.onnx --ops MatMul Gemm          # quantize only these op types

Writes <model>.int8.onnx (metadata kept). With --data, reports top-1 of fp32 and int8 on every image of the split,
how many predictions changed, and batch-1 onnxruntime latency of both.
"""

import argparse
import json
from pathlib import Path

from visiongates.cli import run_cli


def main() -> int:
    import torch

    from visiongates.export.benchmark import markdown_table
    from visiongates.export.quantize import compare_int8, quantize_int8

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("onnx")
    parser.add_argument("--output", default=None, help="default: <model>.int8.onnx beside the input")
    parser.add_argument("--ops", nargs="+", default=None, help="ONNX op types to quantize (default: all it can)")
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--data", default=None, help="ImageFolder root for the accuracy comparison")
    parser.add_argument("--split", default="val")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = Path(args.onnx)
    output = Path(args.output) if args.output else source.with_suffix(".int8.onnx")
    quantize_int8(source, output, op_types=args.ops, per_channel=args.per_channel)
    print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MB; fp32 {source.stat().st_size / 2**20:.1f} MB)")
    if args.data:
        result = compare_int8(source, output, Path(args.data) / args.split, runs=args.runs)
        print(markdown_table([result]))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run_cli(main)
