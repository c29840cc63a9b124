"""Classifier training on timm's building blocks: optimizer/scheduler factories, Mixup, EMA, label smoothing.

`train(cfg)` runs a whole job: data, model, epochs, evaluation, per-epoch CSV/JSON log and PNG curves, atomic
last/best checkpoints, exact resumption (`cfg.resume`), DDP through torchrun (gloo on CPU).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, dispatch_clip_grad, distribute_bn, unwrap_model
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from visiongates.data import DigitsDataset, ImageFolderDataset, collate_skip, eval_transform, train_transform
from visiongates.errors import VisionGatesError, check_model_name

from .checkpoint import load_checkpoint, load_model_weights, model_state_from, save_checkpoint
from .config import TrainConfig, model_kwargs
from .distributed import DistInfo, cleanup_distributed, gather_floats, init_distributed, parameter_checksum
from .metrics import ClassificationMeter
from .plots import plot_curves

log = logging.getLogger("visiongates.train")


# ----------------------------------------------------------------------------------------------------------- data
def build_datasets(cfg: TrainConfig, mean=None, std=None) -> tuple[Dataset, Dataset]:
    """Train and val datasets for `cfg.data`: the embedded digits, or `<folder>/train` and `<folder>/val`."""
    norm = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    train_tf = train_transform(
        cfg.img_size, scale=(cfg.scale_min, 1.0), hflip=cfg.hflip, rotate=cfg.rotate,
        color_jitter=cfg.color_jitter, **norm,
    )
    val_tf = eval_transform(cfg.img_size, crop_pct=cfg.crop_pct, **norm)
    if cfg.data == "digits":
        return DigitsDataset("train", train_tf, seed=cfg.seed), DigitsDataset("val", val_tf, seed=cfg.seed)
    root = Path(cfg.data)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise VisionGatesError(
                f"'{root}' needs train/ and val/ sub-folders (ImageFolder layout); '{root / split}' is missing"
            )
    train_ds = ImageFolderDataset(root / "train", train_tf, seed=cfg.seed)
    val_ds = ImageFolderDataset(root / "val", val_tf, classes=train_ds.classes, seed=cfg.seed)
    return train_ds, val_ds


def build_loaders(
    cfg: TrainConfig, train_ds: Dataset, val_ds: Dataset, info: DistInfo
) -> tuple[DataLoader, DataLoader, DistributedSampler]:
    """Loaders whose order depends only on (seed, epoch): a DistributedSampler also serves the 1-process case."""
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
    common = dict(num_workers=cfg.workers, collate_fn=collate_skip, persistent_workers=False)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, **common)
    val_indices = list(range(info.rank, len(val_ds), info.world_size))  # shards without padding duplicates
    val_loader = DataLoader(torch.utils.data.Subset(val_ds, val_indices), batch_size=cfg.batch_size, **common)
    if len(train_loader) == 0:
        raise VisionGatesError(
            f"batch size {cfg.batch_size} x {info.world_size} process(es) exceeds the {len(train_ds)} training images"
        )
    return train_loader, val_loader, sampler


# ---------------------------------------------------------------------------------------------------- machinery
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA, fp16 on CUDA; a no-op for 'none'."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise VisionGatesError(f"amp must be none, bf16 or fp16, not '{amp}'")
    if amp == "fp16" and device.type != "cuda":
        raise VisionGatesError("fp16 autocast needs a CUDA device; use --amp bf16 on CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in types that a weights_only load accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device) -> torch.nn.Module:
    model = timm.create_model(
        check_model_name(cfg.model), num_classes=num_classes, drop_rate=cfg.drop, drop_path_rate=cfg.drop_path,
        **model_kwargs(cfg),
    )
    if cfg.pretrained:
        state = model_state_from(load_checkpoint(cfg.pretrained))
        classifier = model.get_classifier()
        head_keys = {f"{name}.{k}" for name, m in model.named_modules() if m is classifier for k in m.state_dict()}
        own = model.state_dict()
        if any(k in state and state[k].shape != own[k].shape for k in head_keys):  # other classes: fresh head
            state = {**{k: v for k, v in state.items() if k not in head_keys}, **{k: own[k] for k in head_keys}}
        load_model_weights(model, state, source=f"pretrained checkpoint '{cfg.pretrained}'")
    return model.to(device)


@dataclass
class TrainState:
    """Everything that a resumed run restores."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    best_top1: float = -1.0
    history: list[dict[str, float]] = field(default_factory=list)


# -------------------------------------------------------------------------------------------------------- steps
def auxiliary_loss(model: torch.nn.Module) -> torch.Tensor | None:
    """The model's own extra loss for its last forward (e.g. MSViT's batch shaping), if it defines one."""
    hook = getattr(unwrap_model(model), "auxiliary_loss", None)
    return hook() if callable(hook) else None


def gate_mask(model: torch.nn.Module) -> torch.Tensor | None:
    """The fine mask of a gated model's last forward (MSViT's `last_gate()`), or None for other models."""
    hook = getattr(unwrap_model(model), "last_gate", None)
    decision = hook() if callable(hook) else None
    return None if decision is None else decision.mask


def steps_per_epoch(cfg: TrainConfig, loader: DataLoader) -> tuple[int, int]:
    """(batches drawn, optimizer updates) per epoch, honouring max_steps_per_epoch and accumulation."""
    batches = len(loader)
    if cfg.max_steps_per_epoch is not None:
        batches = min(batches, cfg.max_steps_per_epoch * cfg.accum_steps)
    return batches, math.ceil(batches / cfg.accum_steps)


def train_one_epoch(
    model, loader, optimizer, loss_fn, cfg: TrainConfig, device, state: TrainState, mixup=None, ema=None,
    scheduler=None, show_progress: bool = False,
) -> dict[str, float]:
    """One pass over the training set with gradient accumulation, clipping, per-update LR and EMA updates."""
    model.train()
    loss_sum, seen, skipped = 0.0, 0, 0
    fine_regions, regions = 0.0, 0
    num_batches, _ = steps_per_epoch(cfg, loader)
    batches: Iterator = iter(loader)
    bar = tqdm(total=num_batches, desc=f"epoch {state.epoch + 1}/{cfg.epochs}", disable=not show_progress, leave=False)
    optimizer.zero_grad(set_to_none=True)
    for index in range(num_batches):
        images, labels, n_skipped = next(batches)
        skipped += n_skipped
        if len(labels) == 0:
            continue
        images, labels = images.to(device), labels.to(device)
        if mixup is not None:
            images, targets = mixup(images, labels)
        else:
            targets = labels
        last_micro = (index + 1) % cfg.accum_steps == 0 or index + 1 == num_batches
        defer_sync = isinstance(model, DistributedDataParallel) and not last_micro
        sync = model.no_sync() if defer_sync else contextlib.nullcontext()
        with sync:
            with autocast(device, cfg.amp):
                logits = model(images)
            loss = loss_fn(logits.float(), targets)
            extra = auxiliary_loss(model)
            if extra is not None:
                loss = loss + extra
            mask = gate_mask(model)
            if mask is not None:
                fine_regions, regions = fine_regions + float(mask.detach().sum()), regions + mask.numel()
            if not torch.isfinite(loss):
                raise VisionGatesError(
                    f"loss became {float(loss)} at epoch {state.epoch + 1}, batch {index}; lower --lr"
                )
            (loss / cfg.accum_steps).backward()
        if last_micro:
            if cfg.clip_grad is not None:
                dispatch_clip_grad(model.parameters(), cfg.clip_grad, mode=cfg.clip_mode)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            if scheduler is not None:
                scheduler.step_update(num_updates=state.step)
            if ema is not None:
                ema.update(model, step=state.step)
        loss_sum += loss.item() * len(labels)
        seen += len(labels)
        bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        bar.update()
    bar.close()
    stats = {"train_loss": loss_sum / max(seen, 1), "train_images": seen, "skipped": skipped}
    if regions:
        stats["train_fine_share"] = fine_regions / regions  # this rank's share (training samples the gate)
    return stats


@torch.no_grad()
def evaluate(model, loader, num_classes: int, device, amp: str = "none") -> tuple[ClassificationMeter, int]:
    """Loss, top-1/top-5 and confusion matrix over a loader (summed over ranks); returns (meter, images skipped)."""
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


# ---------------------------------------------------------------------------------------------------------- run
def _write_logs(history: list[dict[str, float]], output: Path) -> None:
    (output / "log.json").write_text(json.dumps(history, indent=1))
    with open(output / "log.csv", "w", newline="") as f:
        keys = list(dict.fromkeys(k for row in history for k in row))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    plot_curves(history, output / "curves.png")


def _checkpoint(cfg, model, optimizer, scheduler, ema, state: TrainState, classes, data_config) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "epoch": state.epoch,
        "step": state.step,
        "best_top1": state.best_top1,
        "history": state.history,
        "config": cfg.to_dict(),
        "model_name": cfg.model,
        "classes": list(classes),
        "num_classes": len(classes),
        "data_config": data_config,
        "rng": rng_state(),
    }


def _resume_path(cfg: TrainConfig) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        path = Path(cfg.output) / "last.pth"
        return path if path.is_file() else None
    return Path(cfg.resume)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run a training job; returns a summary (best/final accuracy, epochs, wall time, throughput, paths)."""
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    try:
        return _train(cfg, device, info)
    finally:
        cleanup_distributed()


def _train(cfg: TrainConfig, device: torch.device, info: DistInfo) -> dict[str, Any]:
    if cfg.accum_steps < 1 or cfg.epochs < 1 or cfg.batch_size < 1:
        raise VisionGatesError("epochs, batch_size and accum_steps must be >= 1")
    output = Path(cfg.output)
    if info.is_main:
        output.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, cfg.deterministic)
    check_model_name(cfg.model)
    train_ds, val_ds = build_datasets(cfg)
    classes = train_ds.classes
    model = build_model(cfg, len(classes), device)
    data_config = timm.data.resolve_data_config({}, model=model)
    data_config.update(input_size=(3, cfg.img_size, cfg.img_size), crop_pct=cfg.crop_pct)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    train_loader, val_loader, sampler = build_loaders(cfg, train_ds, val_ds, info)
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
        warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr, step_on_epochs=False,
        updates_per_epoch=steps_per_epoch(cfg, train_loader)[1],
    )
    ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
    mixup = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                      label_smoothing=cfg.smoothing, num_classes=len(classes))
        loss_fn = SoftTargetCrossEntropy()
    elif cfg.smoothing > 0:
        loss_fn = LabelSmoothingCrossEntropy(cfg.smoothing)
    else:
        loss_fn = torch.nn.CrossEntropyLoss()

    state = TrainState()
    resume = _resume_path(cfg)
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if ckpt.get("model_name") != cfg.model:
            raise VisionGatesError(f"'{resume}' was written for model '{ckpt.get('model_name')}', not '{cfg.model}'")
        load_model_weights(model, ckpt["model"], source=f"checkpoint '{resume}'")
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.module.load_state_dict(ckpt["ema"])
        state = TrainState(ckpt["epoch"], ckpt["step"], ckpt["best_top1"], list(ckpt["history"]))
        set_rng_state(ckpt["rng"])
        if info.is_main:
            log.info("resumed from %s after epoch %d", resume, state.epoch)

    train_model = DistributedDataParallel(model) if info.enabled else model
    start_epoch, started = state.epoch, time.perf_counter()
    train_images, train_seconds = 0, 0.0
    summary: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after is not None and epoch - start_epoch >= cfg.stop_after:
            break
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        tick = time.perf_counter()
        stats = train_one_epoch(train_model, train_loader, optimizer, loss_fn, cfg, device, state, mixup, ema,
                                scheduler, show_progress=cfg.progress and info.is_main)
        train_seconds += time.perf_counter() - tick
        if info.enabled:  # BatchNorm running stats drift apart per rank: average them (timm's distribute_bn)
            distribute_bn(model, info.world_size, reduce=True)
        train_images += stats["train_images"] * info.world_size
        state.epoch = epoch + 1
        scheduler.step(state.epoch)
        meter, val_skipped = evaluate(model, val_loader, len(classes), device, cfg.amp)
        row = {"epoch": state.epoch, "lr": optimizer.param_groups[0]["lr"], **stats,
               **{f"val_{k}": v for k, v in meter.summary().items()}, "val_skipped": val_skipped,
               "epoch_seconds": round(time.perf_counter() - tick, 3)}
        score = row["val_top1"]
        if ema is not None:
            ema_meter, _ = evaluate(ema.module, val_loader, len(classes), device, cfg.amp)
            row["val_ema_top1"] = ema_meter.summary()["top1"]
            score = max(score, row["val_ema_top1"])
        improved = score > state.best_top1
        state.best_top1 = max(state.best_top1, score)
        state.history.append(row)
        if info.is_main:
            ckpt = _checkpoint(cfg, model, optimizer, scheduler, ema, state, classes, data_config)
            save_checkpoint(ckpt, output / "last.pth")
            if improved:
                best_model = ema.module if ema is not None and row.get("val_ema_top1", -1) >= row["val_top1"] else model
                save_checkpoint({**ckpt, "model": best_model.state_dict()}, output / "best.pth")
            _write_logs(state.history, output)
            skipped = f", {stats['skipped']} unreadable image(s) skipped" if stats["skipped"] else ""
            share = f", val fine share {row['val_fine_share']:.3f}" if "val_fine_share" in row else ""
            log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val top-1 %.2f%%%s%s", state.epoch, cfg.epochs,
                     row["train_loss"], row["val_loss"], row["val_top1"], share, skipped)
    checksums = gather_floats(parameter_checksum(model), info)
    summary = {
        "epochs_done": state.epoch,
        "final_top1": state.history[-1]["val_top1"] if state.history else None,
        "best_top1": state.best_top1,
        "wall_seconds": time.perf_counter() - started,
        "train_images_per_second": train_images / train_seconds if train_seconds else math.nan,
        "rank_checksums": checksums,
        "output": str(output),
    }
    if info.is_main:
        (output / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
