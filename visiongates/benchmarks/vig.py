"""ViG-T vs DeiT-Ti latency (CPU, batch 1, inference mode), each built for the input size it is timed at."""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch

import visiongates.models  # noqa: F401  registers vig_gla_*

from .timing import best_time_ms


def latency_rows(
    sizes: Sequence[int] = (224, 512, 1024),
    vig: str = "vig_gla_tiny",
    baseline: str = "deit_tiny_patch16_224",
    batch: int = 1,
    reps: int = 5,
) -> list[dict]:
    """Best-of-`reps` forward latency of `vig` and `baseline` at each square size, and their ratio."""
    rows = []
    for size in sizes:
        x = torch.randn(batch, 3, size, size)
        row = dict(size=size, tokens=(size // 16) ** 2)
        for key, name in (("vig_ms", vig), ("baseline_ms", baseline)):
            model = timm.create_model(name, img_size=size, num_classes=1000).eval()
            with torch.inference_mode():
                row[key] = best_time_ms(lambda m=model, inp=x: m(inp), reps=reps, warmup=1)
            del model
        row["baseline_over_vig"] = row["baseline_ms"] / row["vig_ms"]
        rows.append(row)
    return rows
