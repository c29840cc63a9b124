"""CPU inference latency of ViG-T (vig_gla_tiny) vs DeiT-Ti (timm deit_tiny_patch16_224), batch 1, in PyTorch (each
model built with the img_size it is timed at) and, at --onnx-sizes, in onnxruntime (one ViG file with dynamic height
and width for every size); the two models alternate. --profile prints where ViG's time goes at each size.

    .venv/bin/python tools/analysis/benchmark_vig.py --threads 1
    .venv/bin/python tools/analysis/benchmark_vig.py --threads 1 --sizes 224 512 1024 --onnx-sizes 224 512 --reps 5
    .venv/bin/python tools/analysis/benchmark_vig.py --threads 1 --sizes 224 --onnx-sizes --profile
"""

from __future__ import annotations

import argparse

import timm
import torch

from visiongates.benchmarks.table import markdown_table
from visiongates.benchmarks.vig import latency_rows, module_profile
from visiongates.cli import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512, 1024])
    parser.add_argument("--onnx-sizes", type=int, nargs="*", default=[224, 512],
                        help="sizes also timed in onnxruntime (none: PyTorch only)")  # fmt: skip
    parser.add_argument("--model", default="vig_gla_tiny")
    parser.add_argument("--baseline", default="deit_tiny_patch16_224")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave the default)")
    parser.add_argument("--profile", action="store_true", help="also print ViG's time per part at each size")
    args = parser.parse_args()
    if unknown := sorted(set(args.onnx_sizes) - set(args.sizes)):
        parser.error(f"--onnx-sizes {unknown} not among --sizes {args.sizes}")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.model} vs {args.baseline}, batch {args.batch}, fp32, {torch.get_num_threads()} thread(s), "
          f"alternated, best of {args.reps}\n")  # fmt: skip
    rows = latency_rows(args.sizes, args.model, args.baseline, args.batch, args.reps, args.onnx_sizes)
    columns = [
        ("size", "size", "d"), ("tokens", "tokens", "d"), ("vig_ms", f"{args.model} ms", ".1f"),
        ("baseline_ms", f"{args.baseline} ms", ".1f"), ("baseline_over_vig", "baseline / ViG", ".2f"),
    ]  # fmt: skip
    if args.onnx_sizes:
        columns += [("ort_vig_ms", "ORT ViG ms", ".1f"), ("ort_baseline_ms", "ORT baseline ms", ".1f"),
                    ("ort_baseline_over_vig", "ORT baseline / ViG", ".2f")]  # fmt: skip
    print(markdown_table(rows, columns))
    if args.profile:
        for size in args.sizes:
            model = timm.create_model(args.model, img_size=size).eval()
            total, shares = module_profile(model, torch.randn(args.batch, 3, size, size), reps=max(args.reps, 5))
            print(f"\n{args.model} at {size} px: median {total:.1f} ms; share of the forward pass per part:")
            print(markdown_table([dict(part=k, share=100 * v) for k, v in shares if v >= 0.005],
                               [("part", "part", "s"), ("share", "%", ".1f")]))  # fmt: skip


if __name__ == "__main__":
    run_cli(main)
