"""CPU latency of onnxruntime against PyTorch eager, in one process, on the same inputs and thread count."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from visiongates.benchmarks.timing import measure

from .onnx_export import export_onnx
from .parity import max_abs_diff, sample_input
from .quantize import choose_method, onnx_latency_ms, quantize_int8, quantize_static_int8
from .runtime import open_session
from .sources import model_from_registry


def compare_latency(
    model: torch.nn.Module, session: ort.InferenceSession, x: torch.Tensor, warmup: int = 3, runs: int = 20
) -> tuple[float, float]:
    """(PyTorch eager ms, onnxruntime ms) on `x`: medians of `runs` calls, the two called in turn (`measure`)."""
    model.eval()
    feed = {session.get_inputs()[0].name: x.numpy()}

    def eager() -> None:
        with torch.inference_mode():
            model(x)

    timings = measure({"pytorch": eager, "onnxruntime": lambda: session.run(None, feed)}, runs, warmup)
    return timings["pytorch"].median_ms, timings["onnxruntime"].median_ms


def one_per_family(names: Sequence[str]) -> list[str]:
    """The smallest model (fewest parameters in its facts) of each export family among `names`, in table order."""
    from visiongates.models import model_facts

    from .families import family_of

    chosen: dict[str, str] = {}
    for name in names:
        family = family_of(name) or name
        facts, best = model_facts(name), chosen.get(family)
        size = facts.params_m if facts else float("inf")
        if best is None or size < (model_facts(best).params_m if model_facts(best) else float("inf")):
            chosen[family] = name
    return list(chosen.values())


def int8_latency(
    path: Path,
    info: Any,
    x: np.ndarray,
    warmup: int,
    runs: int,
    threads: int | None,
    calibration: str | Path | None = None,
) -> dict[str, Any]:
    """int8 copy of an exported model by the family's method (`quantize.choose_method`; static calibrated on
    `calibration` images, else on random inputs, which is enough for latency) and fp32 vs int8 onnxruntime latency
    on `x`, the two called in turn."""
    method, _ = choose_method(info.model_name)
    target = path.with_suffix(f".{method}.int8.onnx")
    if not target.is_file():
        if method == "static":
            quantize_static_int8(path, target, calibration, max_images=16)
        else:
            quantize_int8(path, target)
    ms = onnx_latency_ms({"fp32": path, "int8": target}, x, warmup, runs, threads)
    fp32, int8 = ms["fp32"], ms["int8"]
    return {"int8": method, "int8_ms": int8, "int8_speedup": fp32 / int8}


def benchmark_models(
    names: Sequence[str],
    img_size: int | None = None,
    workdir: str | Path = "runs/onnx_benchmark",
    batch: int = 1,
    warmup: int = 3,
    runs: int = 20,
    int8: bool = False,
    calibration: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Per registry model: PyTorch eager and onnxruntime latency at `batch` x its input size (or `img_size`), and
    the max abs difference of their outputs there; exports (reused if present) go to `workdir`. int8: also the
    latency of its int8 copy (static for convolutional families, dynamic for transformers) and the speed-up."""
    rows = []
    for name in names:
        model, info = model_from_registry(name)
        if img_size is not None:
            info = dataclasses.replace(info, input_size=(info.channels, img_size, img_size))
        path = Path(workdir) / f"{name}_{info.input_size[1]}.onnx"
        if not path.is_file():
            export_onnx(model, info, path, check=False)
        x = sample_input((batch, *info.input_size), info.task)
        session = open_session(path)
        pytorch, onnxruntime = compare_latency(model, session, x, warmup, runs)
        diff, _ = max_abs_diff(model, session, x)
        row = {
            "model": name,
            "input": "x".join(map(str, x.shape)),
            "pytorch_ms": pytorch,
            "onnxruntime_ms": onnxruntime,
            "ratio": onnxruntime / pytorch,
            "max_abs_diff": diff,
        }
        if int8:
            row.update(int8_latency(path, info, x.numpy(), warmup, runs, None, calibration))
        rows.append(row)
    return rows
