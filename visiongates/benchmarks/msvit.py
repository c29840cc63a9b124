"""The MSViT benchmark: compute and latency of input-dependent models measured over real images, against a static
twin, and the gate fitted alone to a target share (`fit_gate_to_target`, Havtorn et al. 2023, Sec. 3.2: the
generalized batch-shaping loss without the task loss sets the share of fine regions on real images in seconds).

MACs come from visiongates.flops.count_macs (FlopCounterMode FLOPs / 2: convolutions, matrix products and
attention, the CPU attention kernel included), counted image by image because the token count depends on the image.
Latency is batch-1 wall time with the models measured alternately image by image, so that a busy machine slows both
alike; reported: the median over images of each image's fastest wall-clock repetition, and the median CPU time of
the forward (with one intra-op thread, the time on an idle core). `latency_images=0` counts MACs only.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from visiongates.flops import count_macs
from visiongates.losses import GeneralizedBatchShapingLoss

from .table import markdown_table
from .timing import measure

__all__ = [
    "count_macs",
    "macs_per_image",
    "macs_by_fine_regions",
    "interleaved_latency",
    "gate_statistics",
    "compare_with_static",
    "comparison_table",
    "fit_gate_to_target",
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
        rows.append({"fine_regions": n, "fine_share": n / regions, "tokens": 1 + regions + 3 * n, "gmacs": macs / 1e9})
    return rows


@torch.inference_mode()
def interleaved_latency(
    models: dict[str, nn.Module], images: Sequence[torch.Tensor], reps: int = 3, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Batch-1 forward time of each model over `images` in ms, alternating the models on every image (`measure`).

    best_ms: median over images of each image's fastest repetition; median_ms / p90_ms: over every forward;
    cpu_ms: median CPU time per forward (with one intra-op thread, the time the forward would take on an idle core:
    a shared machine's preemption is not counted).
    """
    calls = {(name, i): (lambda m=model, x=image[None]: m(x)) for i, image in enumerate(images)
             for name, model in models.items()}  # fmt: skip
    timings = measure(calls, reps, warmup)
    out = {}
    for name in models:
        per_image = [timings[name, i] for i in range(len(images))]
        every = sum(per_image[1:], per_image[0])
        out[name] = {
            "best_ms": statistics.median(t.best_ms for t in per_image),
            "median_ms": every.median_ms,
            "p90_ms": every.p90_ms,
            "cpu_ms": every.cpu_median_ms,
        }
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
    static_row = {
        "top1": 100.0 * static_correct / len(images),
        "fine_share": 1.0,
        "tokens": 1.0 + cells,
        "gmacs": static_macs / 1e9,
        "latency_ms": latency["static"]["best_ms"],
        "cpu_ms": latency["static"]["cpu_ms"],
    }
    dynamic_row = {
        "top1": stats["top1"],
        "fine_share": stats["fine_share"],
        "tokens": statistics.fmean(tokens),
        "gmacs": statistics.fmean(dynamic_macs) / 1e9,
        "latency_ms": latency["dynamic"]["best_ms"],
        "cpu_ms": latency["dynamic"]["cpu_ms"],
    }
    return {
        "images": len(images),
        "latency_images": min(latency_images, len(images)),
        "reps": reps,
        "static": static_row,
        "dynamic": dynamic_row,
        "batched_gmacs": statistics.fmean(batched_macs) / 1e9,
        "batch_size": len(batches[0][1]),
        "latency": latency,
    }


def comparison_table(result: dict) -> str:
    """The comparison of `compare_with_static` as a Markdown table."""
    static, dynamic = result["static"], result["dynamic"]
    ratios = (
        f"{dynamic['gmacs'] / static['gmacs']:.2f}x MACs, {dynamic['latency_ms'] / static['latency_ms']:.2f}x "
        f"wall, {dynamic['cpu_ms'] / static['cpu_ms']:.2f}x CPU"
    )
    rows = [
        {"model": "ViT, every region fine", **static, "vs": "1.00x"},
        {"model": "MSViT, dropped tokens, batch 1", **dynamic, "vs": ratios},
        {
            "model": f"MSViT, padded batches of {result['batch_size']}",
            "gmacs": result["batched_gmacs"],
            "vs": f"{result['batched_gmacs'] / static['gmacs']:.2f}x MACs",
        },
    ]
    columns = [
        ("model", "model", ""),
        ("top1", "top-1 %", ".2f"),
        ("fine_share", "fine share", ".3f"),
        ("tokens", "tokens / image", ".1f"),
        ("gmacs", "GMACs / image", ".4f"),
        ("latency_ms", "latency b1 wall (ms)", ".2f"),
        ("cpu_ms", "latency b1 CPU (ms)", ".2f"),
        ("vs", "vs ViT", ""),
    ]
    return markdown_table(rows, columns, missing="")


def fit_gate_to_target(
    model: nn.Module, loader: Iterable, target: float, epochs: int = 20, lr: float = 1e-2
) -> dict[str, float]:
    """Train `model.scale_gate` (and fresh gBaS priors on the model's coarse grid) on the images of `loader`.

    loader yields (images, labels, skipped) batches of one size. Returns the final loss and the share of regions
    above the 1/2 threshold in the last epoch. The model is left in eval mode.
    """
    images = [x for x, _, _ in loader if len(x)]
    grid = model.scale_gate(images[0][:1]).shape[-2:]
    loss_fn = GeneralizedBatchShapingLoss(tuple(grid), target)
    optimizer = torch.optim.Adam([*model.scale_gate.parameters(), *loss_fn.parameters()], lr=lr)
    model.eval()
    last_loss, fine, regions = float("nan"), 0.0, 0
    for epoch in range(epochs):
        for x in images:
            logits = model.scale_gate(x)
            loss = loss_fn(torch.sigmoid(logits))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last_loss = loss.detach().item()
            if epoch == epochs - 1:
                fine += float((logits > 0).sum())
                regions += logits.numel()
    return {"loss": last_loss, "fine_share": fine / max(regions, 1)}
