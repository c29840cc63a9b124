#!/usr/bin/env python
"""CPU latency of onnxruntime against PyTorch eager per model (batch 1, same process, same thread count).

    python export/benchmark_onnx.py                          # one model per classification family, its own size
    python export/benchmark_onnx.py --models cbam_resnet18 vig_gla_tiny --img-size 160 --runs 30
    python export/benchmark_onnx.py --all                    # every visiongates classifier
    python export/benchmark_onnx.py --models cbam_resnet18 \
        --int8 runs/photos/best.onnx --data data/photos/val  # + a trained model: static int8 vs fp32, top-1

Exports are written to (and reused from) --workdir. Prints a Markdown table; ratio = onnxruntime / PyTorch;
int8 = the method `--method auto` of export/quantize_onnx.py picks for the family (static QDQ for convolutional
families, calibrated on --calibration images or else on random inputs, which is enough for latency; dynamic for
transformers), int8_speedup = fp32 onnxruntime ms / int8 ms. With --int8 (an exported classifier) and --data (an
ImageFolder split), also quantizes that file (static, calibrated on --calibration or the split itself) and prints
fp32 vs int8 latency at batch 1 and top-1 on every image of the split.
"""

import argparse
import json
from pathlib import Path

from visiongates.cli import run_cli


def main() -> int:
    import torch

    import visiongates
    from visiongates.benchmarks.table import markdown_table
    from visiongates.errors import VisionGatesError
    from visiongates.export.benchmark import benchmark_models, one_per_family
    from visiongates.export.quantize import INT8_COLUMNS, compare_int8, quantize
    from visiongates.export.sources import task_of

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--models", nargs="+", default=None, help="registry names (default: the smallest classifier of each family)"
    )
    parser.add_argument("--all", action="store_true", help="every visiongates classifier")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 columns")
    parser.add_argument("--calibration", default=None, help="images to calibrate static int8 on (default: random)")
    parser.add_argument("--img-size", type=int, default=None, help="square input size (default: each model's own)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both frameworks")
    parser.add_argument("--workdir", default="runs/onnx_benchmark")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--int8", default=None, metavar="ONNX", help="an exported classifier to quantize and compare")
    parser.add_argument("--data", default=None, help="ImageFolder split for --int8's top-1 (e.g. .../val)")
    args = parser.parse_args()
    if bool(args.int8) != bool(args.data):
        raise VisionGatesError("--int8 and --data go together")
    torch.set_num_threads(args.threads)
    classifiers = [n for n in visiongates.list_models() if task_of(n) == "classification"]
    names = args.models or (classifiers if args.all else one_per_family(classifiers))
    rows = benchmark_models(
        names,
        args.img_size,
        args.workdir,
        args.batch,
        args.warmup,
        args.runs,
        int8=not args.no_int8,
        calibration=args.calibration,
    )
    print(
        f"onnxruntime vs PyTorch eager, CPU, {args.threads} thread(s), batch {args.batch}, median of {args.runs}"
        " (best of 2 alternating rounds):"
    )
    print(markdown_table(rows))
    result = {"models": rows}
    if args.int8:
        done = quantize(
            args.int8, Path(args.workdir) / f"{Path(args.int8).stem}.int8.onnx", "auto", args.calibration or args.data
        )
        quantized = compare_int8(args.int8, done["path"], args.data, args.warmup, args.runs, args.threads)
        quantized["method"] = done["method"]
        print(
            f"\n{done['method']} int8 vs fp32 in onnxruntime ({args.int8}; top-1 on {quantized['images']} images "
            f"of {args.data}; batch 1):"
        )
        print(markdown_table([quantized], INT8_COLUMNS))
        result["int8"] = quantized
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    run_cli(main)
