"""MAXIM's CPU inference latency per megapixel (behind tools/analysis/benchmark_maxim.py).

Batch 1 under torch.inference_mode, `warmup` untimed forwards then `reps` timed ones (`measure_one`, median
reported). Wall-clock and process CPU time are both kept: on a shared, oversubscribed machine the CPU time of a
1-thread run is the better estimate of the latency on an idle core. GMACs are counted by visiongates.flops.
"""

from __future__ import annotations

import os

import timm
import torch

import visiongates.models  # noqa: F401  registers maxim_*
from visiongates.flops import count_macs

from .timing import measure_one

__all__ = ["COLUMNS", "latency_row"]

COLUMNS = [
    ("model", "model", ""), ("size", "size", "d"), ("params_m", "params (M)", ".2f"), ("gmacs", "GMACs", ".1f"),
    ("latency_s", "wall (s)", ".2f"), ("s_per_mp", "wall s / MP", ".2f"), ("cpu_s", "CPU (s)", ".2f"),
    ("cpu_s_per_mp", "CPU s / MP", ".2f"), ("threads", "threads", "d"), ("load_avg", "load", ".1f"),
]  # fmt: skip


def latency_row(name: str, size: int, warmup: int = 1, reps: int = 2) -> dict:
    """Median latency (s), latency per megapixel (s/MP) and GMACs of one model at one square size."""
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    x = torch.rand(1, 3, size, size)
    macs = count_macs(model, x)
    with torch.inference_mode():
        timing = measure_one(lambda: model(x), reps=reps, warmup=warmup)
    latency, cpu = timing.median_ms / 1e3, timing.cpu_median_ms / 1e3
    megapixels = size * size / 1e6
    return dict(
        model=name,
        size=size,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        gmacs=macs / 1e9,
        latency_s=latency,
        s_per_mp=latency / megapixels,
        cpu_s=cpu,
        cpu_s_per_mp=cpu / megapixels,
        min_s=timing.best_ms / 1e3,
        reps=reps,
        threads=torch.get_num_threads(),
        load_avg=os.getloadavg()[0],
    )
