#!/usr/bin/env python
"""CPU inference latency of MAXIM per megapixel: S-1/2/3 at 256x256 and 512x512, printed as a table.

    .venv/bin/python tools/benchmark_maxim.py                      # maxim_s1/s2/s3, 256 and 512, 1 thread
    .venv/bin/python tools/benchmark_maxim.py --models maxim_s1 --sizes 256 --threads 2 --reps 3 --json out.json

Each model is timed with `warmup` untimed forwards then `reps` timed ones (median reported), batch 1, under
torch.inference_mode. Wall-clock and process CPU time are both reported: on a shared, oversubscribed machine the
CPU time of a 1-thread run is the better estimate of the latency on an idle core. GMACs are counted by
visiongates.flops (multiply-accumulates of convolutions and matrix products; the official "GFLOPs" also count
elementwise operations and are 2.19-2.32x these).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from visiongates.cli import run_cli


def measure(name: str, size: int, warmup: int, reps: int) -> dict:
    """Median latency (s), latency per megapixel (s/MP) and GMACs of one model at one square size."""
    import timm

    from visiongates.flops import count_macs

    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    x = torch.rand(1, 3, size, size)
    times, cpu_times = [], []
    macs = count_macs(model, x)
    with torch.inference_mode():
        for i in range(warmup + reps):
            start, cpu_start = time.perf_counter(), time.process_time()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
    latency, cpu = statistics.median(times), statistics.median(cpu_times)
    megapixels = size * size / 1e6
    return dict(model=name, size=size, params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                gmacs=macs / 1e9, latency_s=latency, s_per_mp=latency / megapixels,
                cpu_s=cpu, cpu_s_per_mp=cpu / megapixels, min_s=min(times), reps=reps,
                threads=torch.get_num_threads(), load_avg=os.getloadavg()[0])


def format_table(rows: list[dict]) -> str:
    """Markdown table of `measure` results."""
    lines = ["| model | size | params (M) | GMACs | wall (s) | wall s / MP | CPU (s) | CPU s / MP | threads | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['size']}x{r['size']} | {r['params_m']:.2f} | {r['gmacs']:.1f} | "
              f"{r['latency_s']:.2f} | {r['s_per_mp']:.2f} | {r['cpu_s']:.2f} | {r['cpu_s_per_mp']:.2f} | "
              f"{r['threads']} | {r['load_avg']:.1f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--models", nargs="+", default=["maxim_s1", "maxim_s2", "maxim_s3"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    import visiongates  # noqa: F401  (registers the models)

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        for size in args.sizes:
            rows.append(measure(name, size, args.warmup, args.reps))
            print(f"{name} {size}: {rows[-1]['latency_s']:.2f} s wall, {rows[-1]['cpu_s']:.2f} s CPU", flush=True)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    run_cli(main)
