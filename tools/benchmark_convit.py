"""CPU inference benchmark: peak memory and latency of gpsa_convit vs timm's convit at high resolution.

Each measurement runs in a fresh subprocess (peak RSS from getrusage is a per-process high-water mark):
build the model for the input size, record RSS, run `warmup + reps` forwards under inference_mode, record peak RSS.

    .venv/bin/python tools/benchmark_convit.py --variant tiny --sizes 512 1024 --batch 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

IMPLS = {
    "timm": "timm convit (dense [B,N,N,3] offsets)",
    "ours-explicit": "gpsa_convit, explicit content softmax",
    "ours": "gpsa_convit, SDPA content attention",
}


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(impl: str, variant: str, size: int, batch: int, warmup: int, reps: int, threads: int) -> dict:
    """Measure one (implementation, size) in this process; returns a JSON-able dict."""
    import timm
    import torch

    import visiongates  # noqa: F401

    torch.set_num_threads(threads)
    if impl == "ours-explicit":
        timm.layers.set_fused_attn(False)
    name = f"convit_{variant}" if impl == "timm" else f"gpsa_convit_{variant}"
    torch.manual_seed(0)
    model = timm.create_model(name, img_size=size).eval()
    x = torch.randn(batch, 3, size, size)
    rss_before = _rss_now_mb()
    times = []
    with torch.inference_mode():
        for i in range(warmup + reps):
            start = time.perf_counter()
            out = model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    assert torch.isfinite(out).all()
    return dict(impl=impl, size=size, rss_before_mb=rss_before, peak_mb=_rss_peak_mb(),
                latency_s=statistics.median(times), latency_min_s=min(times))


def run_one(args: argparse.Namespace, impl: str, size: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--variant", args.variant, "--sizes", str(size),
           "--batch", str(args.batch), "--warmup", str(args.warmup), "--reps", str(args.reps),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    parser.add_argument("--worker", choices=list(IMPLS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.variant, args.sizes[0], args.batch, args.warmup, args.reps, args.threads)
        print(json.dumps(result))
        return

    print(f"convit_{args.variant}, batch {args.batch}, inference (torch.inference_mode), CPU, {args.threads} threads, "
          f"median of {args.reps} after {args.warmup} warm-up; one subprocess per row")
    header = (f"{'size':>6} {'implementation':<40} {'peak RSS MB':>12} {'fwd extra MB':>13} {'latency s':>10} "
              f"{'peak/timm':>10} {'extra/timm':>11} {'time/timm':>10}")
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        rows = [run_one(args, impl, size) for impl in args.impls]
        ref = next((r for r in rows if r["impl"] == "timm"), None)
        for r in rows:
            extra = r["peak_mb"] - r["rss_before_mb"]
            ratios = ("", "", "")
            if ref is not None:
                ref_extra = ref["peak_mb"] - ref["rss_before_mb"]
                ratios = (f"{r['peak_mb'] / ref['peak_mb']:.3f}", f"{extra / ref_extra:.3f}",
                          f"{r['latency_s'] / ref['latency_s']:.3f}")
            print(f"{size:>6} {IMPLS[r['impl']]:<40} {r['peak_mb']:>12.0f} {extra:>13.0f} {r['latency_s']:>10.2f} "
                  f"{ratios[0]:>10} {ratios[1]:>11} {ratios[2]:>10}", flush=True)
    print("peak RSS: ru_maxrss of the subprocess (includes the interpreter, torch and the model); "
          "fwd extra: peak minus RSS just before the first forward.")


if __name__ == "__main__":
    main()
