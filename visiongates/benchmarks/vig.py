"""ViG-T vs DeiT-Ti latency on CPU (batch 1, inference), in PyTorch and in onnxruntime, and where ViG's time goes.

PyTorch: each model built for the input size it is timed at. onnxruntime: one ViG file exported with dynamic
height and width, run at every size; the baseline (a timm model, fixed size) exported once per size. The two
models are timed alternately (one call of each per repetition), so that a load change hits both.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

import visiongates.models  # noqa: F401  registers vig_gla_*

from .timing import measure


def _export(model: nn.Module, name: str, size: int, path: Path, dynamic: bool) -> Path:
    from visiongates.export import ModelInfo, export_onnx

    info = ModelInfo("classification", name, (3, size, size), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    return export_onnx(model, info, path, dynamic_size=dynamic, check=False).path


def latency_rows(
    sizes: Sequence[int] = (224, 512, 1024),
    vig: str = "vig_gla_tiny",
    baseline: str = "deit_tiny_patch16_224",
    batch: int = 1,
    reps: int = 5,
    onnx_sizes: Sequence[int] = (),
    workdir: str | Path | None = None,
) -> list[dict]:
    """Best-of-`reps` forward latency of `vig` and `baseline` at each square size, and their ratio; at the sizes in
    `onnx_sizes` also in onnxruntime (ViG: one file with dynamic height and width, exported at the smallest of them;
    baseline: one file per size), with intra-op threads = torch's. Exports go to `workdir` (a temp dir if None)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(workdir or tmp)
        vig_session = None
        if onnx_sizes:
            from visiongates.export.runtime import open_session

            first = min(onnx_sizes)
            model = timm.create_model(vig, img_size=first, num_classes=1000).eval()
            vig_session = open_session(_export(model, vig, first, workdir / f"{vig}.onnx", dynamic=True))
        for size in sizes:
            x = torch.randn(batch, 3, size, size)
            models = {key: timm.create_model(name, img_size=size, num_classes=1000).eval()
                      for key, name in (("vig", vig), ("baseline", baseline))}  # fmt: skip
            with torch.inference_mode():
                timings = measure({key: (lambda m=m, x=x: m(x)) for key, m in models.items()}, reps)
            ms = {key: t.best_ms for key, t in timings.items()}
            row = dict(size=size, tokens=(size // 16) ** 2, vig_ms=ms["vig"], baseline_ms=ms["baseline"])
            row["baseline_over_vig"] = row["baseline_ms"] / row["vig_ms"]
            if size in onnx_sizes:
                path = _export(models["baseline"], baseline, size, workdir / f"{baseline}_{size}.onnx", dynamic=False)
                sessions = {"vig": vig_session, "baseline": open_session(path)}
                feed = x.numpy()
                runs = {key: (lambda s=s, f=feed: s.run(None, {s.get_inputs()[0].name: f}))
                        for key, s in sessions.items()}  # fmt: skip
                ms = {key: t.best_ms for key, t in measure(runs, reps).items()}
                row.update(ort_vig_ms=ms["vig"], ort_baseline_ms=ms["baseline"])
                row["ort_baseline_over_vig"] = row["ort_baseline_ms"] / row["ort_vig_ms"]
            rows.append(row)
            del models
    return rows


def module_profile(model: nn.Module, x: torch.Tensor, reps: int = 10) -> tuple[float, list[tuple[str, float]]]:
    """Where a forward pass spends its time: (median total ms, [(part, share of the total)], largest first).

    Parts are leaf modules (block indices folded: `blocks.*.mlp.fc1`; `blocks.*.attn.bigla` is the BiGLA op) and
    the rest (reshapes and element-wise ops between modules), each the median over `reps` forward passes of the
    sum over blocks. Timed with forward hooks and perf_counter rather than torch.profiler: on the machines this
    was written on the profiler made large outputs page-fault on every call (thousands of minor faults per ViG-T
    forward, none without it), inflating the big matmuls several-fold.
    """
    spent: Counter[str] = Counter()
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or isinstance(module, (nn.Identity, nn.Dropout)):
            continue
        key = re.sub(r"\.\d+(?=\.|$)", ".*", name)
        starts: list[float] = []
        handles.append(module.register_forward_pre_hook(lambda m, a, s=starts: s.append(time.perf_counter())))
        handles.append(module.register_forward_hook(
            lambda m, a, o, s=starts, k=key: spent.update({k: time.perf_counter() - s.pop()})))  # fmt: skip
    runs = []
    try:
        with torch.inference_mode():
            model(x)
            for _ in range(reps):
                spent.clear()
                start = time.perf_counter()
                model(x)
                runs.append((time.perf_counter() - start, dict(spent)))
    finally:
        for handle in handles:
            handle.remove()
    total = statistics.median(t for t, _ in runs)
    parts = {key: statistics.median(r.get(key, 0.0) for _, r in runs) for key in set().union(*(r for _, r in runs))}
    parts["(between modules: reshapes, element-wise)"] = max(total - sum(parts.values()), 0.0)
    shares = sorted(((key, value / total) for key, value in parts.items()), key=lambda kv: -kv[1])
    return total * 1e3, shares
