"""CPU inference benchmark behind tools/analysis/benchmark_convit.py: peak memory and latency of gpsa_convit vs
timm's convit at high resolution.

Each measurement runs in a fresh subprocess (peak RSS from getrusage is a per-process high-water mark): build the
model for the input size, record RSS, run `warmup + reps` forwards under inference_mode (`measure_one`), record
peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

__all__ = ["IMPLS", "compare_rows", "measure_in_subprocess", "worker"]

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

    import visiongates.models  # noqa: F401  registers gpsa_convit_*

    from .timing import measure_one

    torch.set_num_threads(threads)
    if impl == "ours-explicit":
        timm.layers.set_fused_attn(False)
    name = f"convit_{variant}" if impl == "timm" else f"gpsa_convit_{variant}"
    torch.manual_seed(0)
    model = timm.create_model(name, img_size=size).eval()
    x = torch.randn(batch, 3, size, size)
    rss_before = _rss_now_mb()
    with torch.inference_mode():
        timing = measure_one(lambda: model(x), reps=reps, warmup=warmup)
        if not torch.isfinite(model(x)).all():
            raise RuntimeError(f"{name} at {size}x{size} gave non-finite outputs")
    return dict(
        impl=impl,
        size=size,
        rss_before_mb=rss_before,
        peak_mb=_rss_peak_mb(),
        latency_s=timing.median_ms / 1e3,
        latency_min_s=timing.best_ms / 1e3,
    )


def measure_in_subprocess(impl: str, variant: str, size: int, batch: int, warmup: int, reps: int, threads: int) -> dict:
    """`worker` in a fresh Python process (so that its peak RSS is its own)."""
    root = str(Path(__file__).parents[2])  # this checkout, whether or not visiongates is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    args = json.dumps([impl, variant, size, batch, warmup, reps, threads])
    command = [sys.executable, "-m", __name__, args]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_rows(
    impls: list[str], variant: str, size: int, batch: int, warmup: int, reps: int, threads: int
) -> list[dict]:
    """One row per implementation at one size: peak RSS, the forward's extra memory, latency, and each as a ratio
    to timm's convit (when it is among `impls`)."""
    rows = [measure_in_subprocess(impl, variant, size, batch, warmup, reps, threads) for impl in impls]
    ref = next((r for r in rows if r["impl"] == "timm"), None)
    for r in rows:
        r["implementation"] = IMPLS[r["impl"]]
        r["extra_mb"] = r["peak_mb"] - r["rss_before_mb"]
        if ref is not None:
            r["peak_vs_timm"] = r["peak_mb"] / ref["peak_mb"]
            r["extra_vs_timm"] = r["extra_mb"] / (ref["peak_mb"] - ref["rss_before_mb"])
            r["time_vs_timm"] = r["latency_s"] / ref["latency_s"]
    return rows


if __name__ == "__main__":  # the subprocess of `measure_in_subprocess`
    print(json.dumps(worker(*json.loads(sys.argv[1]))))
