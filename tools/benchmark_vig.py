"""CPU inference latency of ViG-T (vig_gla_tiny) vs DeiT-Ti (timm deit_tiny_patch16_224), batch 1, each model
built with the img_size it is timed at.

    .venv/bin/python tools/benchmark_vig.py --threads 1
    .venv/bin/python tools/benchmark_vig.py --sizes 224 512 1024 --reps 5
"""

from __future__ import annotations

import argparse

import torch

from visiongates.benchmarks.timing import format_table
from visiongates.benchmarks.vig import latency_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512, 1024])
    parser.add_argument("--model", default="vig_gla_tiny")
    parser.add_argument("--baseline", default="deit_tiny_patch16_224")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave the default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.model} vs {args.baseline}, batch {args.batch}, fp32, {torch.get_num_threads()} thread(s), "
          f"best of {args.reps}\n")  # fmt: skip
    rows = latency_rows(args.sizes, args.model, args.baseline, args.batch, args.reps)
    print(format_table(rows, [
        ("size", "size", "d"), ("tokens", "tokens", "d"), ("vig_ms", f"{args.model} ms", ".1f"),
        ("baseline_ms", f"{args.baseline} ms", ".1f"), ("baseline_over_vig", "baseline / ViG", ".2f"),
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
