#!/usr/bin/env python
"""CPU inference latency of MAXIM per megapixel: S-1/2/3 at 256x256 and 512x512, printed as a table.

    .venv/bin/python tools/analysis/benchmark_maxim.py                      # maxim_s1/s2/s3, 256 and 512, 1 thread
    .venv/bin/python tools/analysis/benchmark_maxim.py --models maxim_s1 --sizes 256 --threads 2 --reps 3 \
        --json out.json

How it measures: visiongates/benchmarks/maxim.py. GMACs are multiply-accumulates of convolutions and matrix
products; the official "GFLOPs" also count elementwise operations and are 2.19-2.32x these.
"""

from __future__ import annotations

import argparse
import json

from visiongates.cli import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--models", nargs="+", default=["maxim_s1", "maxim_s2", "maxim_s3"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    import torch

    from visiongates.benchmarks.maxim import COLUMNS, latency_row
    from visiongates.benchmarks.table import markdown_table

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        for size in args.sizes:
            rows.append(latency_row(name, size, args.warmup, args.reps))
            print(f"{name} {size}: {rows[-1]['latency_s']:.2f} s wall, {rows[-1]['cpu_s']:.2f} s CPU", flush=True)
    print(markdown_table(rows, COLUMNS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    run_cli(main)
