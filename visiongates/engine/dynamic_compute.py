"""Compute and latency of input-dependent models (MSViT) measured over real images, against a static twin.

MACs come from visiongates.flops.count_macs (FlopCounterMode FLOPs / 2: convolutions, matrix products and
attention, the CPU attention kernel included), counted image by image because the token count depends on the image.
Latency is batch-1 wall time with the models measured alternately image by image, so that a busy machine slows both
alike; reported: the median over images of each image's fastest wall-clock repetition, and the median CPU time of
the forward (with one intra-op thread, the time on an idle core). `latency_images=0` counts MACs only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from visiongates.flops import count_macs

__all__ = [
    "count_macs", "macs_per_image", "macs_by_fine_regions", "interleaved_latency", "gate_statistics",
    "compare_with_static", "markdown_table",
]


def macs_per_image(model: nn.Module, images: Iterable[torch.Tensor]) -> list[float]:
    """MACs of a batch-1 forward for each image [C, H, W]."""
    return [count_macs(model, image[None]) for image in images]


@torch.no_grad()
def macs_by_fine_regions(model: nn.Module, size: int, fine_regions: Iterable[int]) -> list[dict[str, float]]:
    """Batch-1 MACs of MSViT `model` (dropped-token path) on a `size` x `size` image whose gate keeps `n` regions
    fine, for each n of `fine_regions`: the gate runs (and is counted), then its decision is replaced by n fine
    regions. MACs depend on n alone, not on which regions or on the weights."""
    from visiongates.layers.scale_gate import GateDecision

    x, decide, rows = torch.zeros(1, 3, size, size), model.decide_scales, []
    for n in fine_regions:
        def forced(images: torch.Tensor, n: int = n) -> GateDecision:
            mask = torch.zeros_like(decide(images).mask)
            mask.view(-1)[:n] = 1.0
            return GateDecision(torch.logit(mask, eps=1e-6), mask, mask)

        model.decide_scales = forced
        try:
            macs = count_macs(model, x)
        finally:
            del model.decide_scales
        regions = (size // model.patch // 2) ** 2  # each coarse region is 1 token, each fine one 4
        rows.append({"fine_regions": n, "fine_share": n / regions, "tokens": 1 + regions + 3 * n,
                     "gmacs": macs / 1e9})
    return rows


@torch.inference_mode()
def interleaved_latency(
    models: dict[str, nn.Module], images: Sequence[torch.Tensor], reps: int = 3, warmup: int = 3
) -> dict[str, dict[str, float]]:
    """Batch-1 forward time of each model, alternating models on every image, in ms.

    best_ms: median over images of each image's fastest wall-clock repetition; median_ms / p90_ms: over every
    forward; cpu_ms: median CPU time of this thread per forward (with one intra-op thread it is the time the forward
    would take on an idle core: a shared machine's preemption is not counted).
    """
    for _ in range(warmup):
        for model in models.values():
            model(images[0][None])
    wall = {name: [[] for _ in images] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(reps):
        for index, image in enumerate(images):
            x = image[None]
            for name, model in models.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                model(x)
                cpu[name].append(1e3 * (time.thread_time() - start_cpu))
                wall[name][index].append(1e3 * (time.perf_counter() - start))
    out = {}
    for name, per_image in wall.items():
        flat = sorted(t for values in per_image for t in values)
        out[name] = {"best_ms": statistics.median(min(values) for values in per_image),
                     "median_ms": statistics.median(flat), "p90_ms": flat[int(0.9 * (len(flat) - 1))],
                     "cpu_ms": statistics.median(cpu[name])}
    return out


@torch.no_grad()
def gate_statistics(model: nn.Module, loader: Iterable) -> dict[str, float]:
    """Top-1 and the share of regions kept fine over a loader of (images, labels, skipped) batches.

    `model` must expose `last_gate()` (MSViT): the share is read from the decisions of each forward.
    """
    correct = seen = fine = regions = 0
    for images, labels, _ in loader:
        logits = model(images)
        mask = model.last_gate().mask
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        fine += float(mask.sum())
        regions += mask.numel()
    return {"top1": 100.0 * correct / max(seen, 1), "fine_share": fine / max(regions, 1), "images": seen}


def compare_with_static(
    model: nn.Module, static: nn.Module, loader: Iterable, latency_images: int = 60, reps: int = 3
) -> dict[str, object]:
    """MSViT `model` (batch-1 dropped-token path) against `static` (the all-fine ViT with the same weights).

    Over every image of `loader`: top-1, share of regions kept fine, tokens and MACs per image at batch 1, MACs per
    image in the loader's (padded) batches; batch-1 latency on the first `latency_images`, alternating the models.
    """
    batches = [(x, y) for x, y, _ in loader if len(y)]
    images = [image for x, _ in batches for image in x]
    stats = gate_statistics(model, ((x, y, 0) for x, y in batches))
    with torch.no_grad():
        static_correct = sum(int((static(x).argmax(1) == y).sum()) for x, y in batches)
        tokens = []
        for image in images:
            model(image[None])
            mask = model.last_gate().mask
            cells = (image.shape[-2] // model.patch) * (image.shape[-1] // model.patch)
            tokens.append(1 + cells - 3 * float(mask.numel() - mask.sum()))
    dynamic_macs = macs_per_image(model, images)
    static_macs = count_macs(static, images[0][None])  # the same for every image of one size
    batched_macs = [count_macs(model, x) / len(x) for x, _ in batches]
    latency = {name: {"best_ms": float("nan"), "cpu_ms": float("nan")} for name in ("static", "dynamic")}
    if latency_images > 0:
        latency = interleaved_latency({"static": static, "dynamic": model}, images[:latency_images], reps=reps)
    static_row = {"top1": 100.0 * static_correct / len(images), "fine_share": 1.0, "tokens": 1.0 + cells,
                  "gmacs": static_macs / 1e9, "latency_ms": latency["static"]["best_ms"],
                  "cpu_ms": latency["static"]["cpu_ms"]}
    dynamic_row = {"top1": stats["top1"], "fine_share": stats["fine_share"], "tokens": statistics.fmean(tokens),
                   "gmacs": statistics.fmean(dynamic_macs) / 1e9, "latency_ms": latency["dynamic"]["best_ms"],
                   "cpu_ms": latency["dynamic"]["cpu_ms"]}
    return {"images": len(images), "latency_images": min(latency_images, len(images)), "reps": reps,
            "static": static_row, "dynamic": dynamic_row, "batched_gmacs": statistics.fmean(batched_macs) / 1e9,
            "batch_size": len(batches[0][1]), "latency": latency}


def markdown_table(result: dict) -> str:
    """The comparison of `compare_with_static` as a markdown table."""
    static, dynamic = result["static"], result["dynamic"]
    lines = [
        "| model | top-1 % | fine share | tokens / image | GMACs / image | latency b1 wall (ms) | latency b1 CPU (ms) "
        "| vs ViT |",
        "|---|---|---|---|---|---|---|---|",
        f"| ViT, every region fine | {static['top1']:.2f} | 1.000 | {static['tokens']:.1f} | {static['gmacs']:.4f} "
        f"| {static['latency_ms']:.2f} | {static['cpu_ms']:.2f} | 1.00x |",
        f"| MSViT, dropped tokens, batch 1 | {dynamic['top1']:.2f} | {dynamic['fine_share']:.3f} "
        f"| {dynamic['tokens']:.1f} | {dynamic['gmacs']:.4f} | {dynamic['latency_ms']:.2f} | {dynamic['cpu_ms']:.2f} "
        f"| {dynamic['gmacs'] / static['gmacs']:.2f}x MACs, {dynamic['latency_ms'] / static['latency_ms']:.2f}x wall, "
        f"{dynamic['cpu_ms'] / static['cpu_ms']:.2f}x CPU |",
        f"| MSViT, padded batches of {result['batch_size']} | | | | {result['batched_gmacs']:.4f} | | | "
        f"{result['batched_gmacs'] / static['gmacs']:.2f}x MACs |",
    ]
    return "\n".join(lines)
