"""CPU inference benchmark: peak memory and latency of gpsa_convit vs timm's convit at high resolution.

Each row is measured in a fresh subprocess (visiongates/benchmarks/convit.py says how).

    .venv/bin/python tools/analysis/benchmark_convit.py --variant tiny --sizes 512 1024 --batch 2
"""

from __future__ import annotations

import argparse

from visiongates.cli import run_cli

COLUMNS = [
    ("size", "size", "d"), ("implementation", "implementation", ""), ("peak_mb", "peak RSS MB", ".0f"),
    ("extra_mb", "fwd extra MB", ".0f"), ("latency_s", "latency s", ".2f"), ("peak_vs_timm", "peak/timm", ".3f"),
    ("extra_vs_timm", "extra/timm", ".3f"), ("time_vs_timm", "time/timm", ".3f"),
]  # fmt: skip


def main() -> None:
    from visiongates.benchmarks.convit import IMPLS, compare_rows
    from visiongates.benchmarks.table import markdown_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    args = parser.parse_args()

    print(
        f"convit_{args.variant}, batch {args.batch}, inference (torch.inference_mode), CPU, {args.threads} threads, "
        f"median of {args.reps} after {args.warmup} warm-up; one subprocess per row"
    )
    rows = []
    for size in args.sizes:
        rows += compare_rows(args.impls, args.variant, size, args.batch, args.warmup, args.reps, args.threads)
    print(markdown_table(rows, COLUMNS))
    print(
        "peak RSS: ru_maxrss of the subprocess (includes the interpreter, torch and the model); "
        "fwd extra: peak minus RSS just before the first forward."
    )


if __name__ == "__main__":
    run_cli(main)
