"""Classifier evaluation: the metric loop the classification task validates with, and a trained checkpoint's
top-1/top-5, per-class accuracy and confusion-matrix PNG (tools/eval.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.utils import unwrap_model
from torch.utils.data import DataLoader

from visiongates.data import build_dataset, collate_skip, eval_transform
from visiongates.errors import CheckpointError, UnknownClassesError
from visiongates.models import check_model_name

from .checkpoint import load_checkpoint, load_model_weights
from .config import model_kwargs
from .metrics import ClassificationMeter
from .plots import plot_confusion
from .setup import autocast, resolve_device


def gate_mask(model: torch.nn.Module) -> torch.Tensor | None:
    """The fine mask of a gated model's last forward (MSViT's `last_gate()`), or None for other models."""
    hook = getattr(unwrap_model(model), "last_gate", None)
    decision = hook() if callable(hook) else None
    return None if decision is None else decision.mask


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader: DataLoader, num_classes: int, device: torch.device, amp: str = "none"
) -> tuple[ClassificationMeter, int]:
    """Loss, top-1 (top-5 where there are more than 5 classes) and confusion matrix over a loader (summed over
    ranks); returns (meter, images skipped)."""
    model.eval()
    meter = ClassificationMeter(num_classes)
    skipped = 0
    for images, labels, n_skipped in loader:
        skipped += n_skipped
        if len(labels) == 0:
            continue
        images, labels = images.to(device), labels.to(device)
        with autocast(device, amp):
            logits = model(images)
        meter.update(logits, labels, F.cross_entropy(logits.float(), labels))
        mask = gate_mask(model)
        if mask is not None:
            meter.update_gate(mask)
    meter.all_reduce()
    return meter, skipped


def load_classifier(checkpoint: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a tools/train.py checkpoint describes and load its weights (weights_only)."""
    ckpt = load_checkpoint(checkpoint)
    for key in ("model_name", "model", "classes"):
        if key not in ckpt:
            raise CheckpointError(f"'{checkpoint}' is not a tools/train.py checkpoint (no '{key}' entry)")
    model = timm.create_model(
        check_model_name(ckpt["model_name"]), num_classes=len(ckpt["classes"]), **model_kwargs(ckpt.get("config", {}))
    )
    load_model_weights(model, ckpt["model"], source=f"checkpoint '{checkpoint}'")
    return model.to(resolve_device(device)).eval(), ckpt


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str,
    split: str = "val",
    output: str | Path | None = None,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "cpu",
    known_classes_only: bool = False,
) -> dict[str, Any]:
    """Evaluate on `data` ('digits' or an ImageFolder root with `split`/); writes metrics.json and confusion.png.

    A class folder the checkpoint does not know is an error naming it; with `known_classes_only` its images are
    left out instead and the result lists them (`left_out`: {class: images})."""
    model, ckpt = load_classifier(checkpoint, device)
    cfg = ckpt.get("config", {})
    size, crop_pct = cfg.get("img_size", 224), cfg.get("crop_pct", 0.875)
    data_config = ckpt.get("data_config") or {}
    norm = {k: tuple(data_config[k]) for k in ("mean", "std") if k in data_config}
    transform = eval_transform(size, crop_pct=crop_pct, **norm)
    try:
        dataset = build_dataset(
            data,
            split,
            transform,
            classes=ckpt["classes"],
            unknown_classes="leave_out" if known_classes_only else "error",
        )
    except UnknownClassesError as exc:
        raise UnknownClassesError(
            f"{exc}, which checkpoint '{checkpoint}' was trained on; "
            "--known-classes-only evaluates on those classes and reports what it left out"
        ) from None
    left_out = getattr(dataset, "left_out", {})  # images of classes left out (ImageFolder only)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skip)
    meter, skipped = evaluate(model, loader, len(ckpt["classes"]), next(model.parameters()).device)
    result = {
        **meter.summary(),
        "images": meter.count,
        "skipped": skipped,
        "left_out": left_out,
        "per_class_top1": dict(zip(ckpt["classes"], meter.per_class_accuracy())),
        "confusion": meter.confusion.tolist(),
    }
    if output is not None:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        (output / "metrics.json").write_text(json.dumps(result, indent=1))
        plot_confusion(meter.confusion, ckpt["classes"], output / "confusion.png")
    return result
