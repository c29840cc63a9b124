"""Classifier training on timm's building blocks: optimizer/scheduler factories, Mixup, EMA, label smoothing.

`train(cfg)` runs a whole job in named steps (`build_job`, `restore`, `run_epoch`, `save_epoch`, `summarize`): data,
model, epochs, evaluation, per-epoch CSV/JSON log and PNG curves, atomic last.pth (full training state) and
best.pth (weights and what inference needs), exact resumption (`cfg.resume`, also from the middle of an epoch after
SIGTERM), non-finite losses stopped or skipped (`cfg.on_nonfinite`), DDP through torchrun (gloo on CPU).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import logging
import math
import random
import signal
import threading
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

from visiongates.data import (
    build_dataset,
    class_folders,
    collate_skip,
    eval_transform,
    train_transform,
)
from visiongates.errors import (
    CheckpointError,
    CheckpointWriteError,
    Interrupted,
    UnknownClassesError,
    VisionGatesError,
)
from visiongates.models import check_model_name

from .checkpoint import (
    load_checkpoint,
    load_model_weights,
    model_state_from,
    remove_stale_temporaries,
    save_checkpoint,
)
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
        cfg.img_size,
        scale=(cfg.scale_min, 1.0),
        hflip=cfg.hflip,
        rotate=cfg.rotate,
        color_jitter=cfg.color_jitter,
        **norm,
    )
    val_tf = eval_transform(cfg.img_size, crop_pct=cfg.crop_pct, **norm)
    if cfg.data != "digits":
        _check_split_folders(Path(cfg.data))
    train_ds = build_dataset(cfg.data, "train", train_tf, seed=cfg.seed, max_pixels=cfg.max_pixels)
    val_ds = build_dataset(cfg.data, "val", val_tf, classes=train_ds.classes, seed=cfg.seed, max_pixels=cfg.max_pixels)
    return train_ds, val_ds


def _check_split_folders(root: Path) -> None:
    """`root` holds train/ and val/ with the same class folders, or an error says what differs."""
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise VisionGatesError(
                f"'{root}' needs train/ and val/ sub-folders (ImageFolder layout); '{root / split}' is missing"
            )
    only_train = sorted(set(class_folders(root / "train")) - set(class_folders(root / "val")))
    only_val = sorted(set(class_folders(root / "val")) - set(class_folders(root / "train")))
    if only_train or only_val:
        raise UnknownClassesError(
            f"train/ and val/ of '{root}' hold different class folders: only in train/: {only_train or 'none'}; "
            f"only in val/: {only_val or 'none'}"
        )


def build_loaders(
    cfg: TrainConfig, train_ds: Dataset, val_ds: Dataset, info: DistInfo
) -> tuple[DataLoader, DataLoader, ResumableSampler]:
    """Loaders whose order depends only on (seed, epoch): a DistributedSampler also serves the 1-process case.

    Each loader draws its workers' seeds from its own generator, not from torch's global RNG, so that starting an
    iterator does not move the RNG state that a checkpoint restores.
    """
    sampler = ResumableSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
    common = dict(
        num_workers=cfg.workers,
        collate_fn=collate_skip,
        persistent_workers=False,
        worker_init_fn=_ignore_sigterm_in_worker,
    )
    train_loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        **common,
    )
    val_indices = list(range(info.rank, len(val_ds), info.world_size))  # shards without padding duplicates
    val_loader = DataLoader(
        torch.utils.data.Subset(val_ds, val_indices),
        batch_size=cfg.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),
        **common,
    )
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
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
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
        check_model_name(cfg.model),
        num_classes=num_classes,
        drop_rate=cfg.drop,
        drop_path_rate=cfg.drop_path,
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


class ResumableSampler(DistributedSampler):
    """timm-style distributed sampler whose epoch can start part-way: `set_epoch(epoch, skip=n)` drops this rank's
    first n indices (the samples a mid-epoch checkpoint has already trained on). The order stays a function of
    (seed, epoch) alone, and `len` stays the full epoch's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)


class StopFlag:
    """Set by SIGTERM (what cluster schedulers send before preemption); the loop finishes its step, saves, stops."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def requested(self, info: DistInfo) -> bool:
        """True when any rank was signalled (all ranks must ask at the same points: it is a collective)."""
        flag = self.signum is not None
        if info.enabled:
            tensor = torch.tensor([float(flag)])
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag


@contextlib.contextmanager
def catch_sigterm() -> Iterator[StopFlag]:
    """Route SIGTERM to a StopFlag while training (main thread only; elsewhere the flag is never set)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, flag)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ignore_sigterm_in_worker(worker_id: int) -> None:
    """Loader workers leave SIGTERM to the main process, which stops them once its checkpoint is written."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@dataclass
class TrainState:
    """Everything that a resumed run restores."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    best_top1: float = -1.0
    history: list[dict[str, float]] = field(default_factory=list)
    batch: int = 0  # batches of epoch `epoch + 1` already trained (> 0 in a mid-epoch checkpoint only)
    totals: dict[str, float] = field(default_factory=dict)  # that epoch's running sums, so its log row is exact


@dataclass
class EpochTotals:
    """Running sums of one training epoch (saved in a mid-epoch checkpoint)."""

    loss_sum: float = 0.0
    seen: int = 0
    skipped: int = 0  # unreadable images
    nonfinite: int = 0  # steps skipped for a NaN / inf loss (--on-nonfinite skip)
    fine_regions: float = 0.0
    regions: int = 0

    def stats(self) -> dict[str, float]:
        out = {"train_loss": self.loss_sum / max(self.seen, 1), "train_images": self.seen, "skipped": self.skipped}
        if self.nonfinite:
            out["nonfinite_skipped"] = self.nonfinite
        if self.regions:
            out["train_fine_share"] = self.fine_regions / self.regions  # this rank's share (training samples the gate)
        return out


@dataclass
class Job:
    """The parts of one training run, built once by `build_job`."""

    cfg: TrainConfig
    device: torch.device
    info: DistInfo
    output: Path
    model: torch.nn.Module
    train_model: torch.nn.Module  # `model`, wrapped in DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: ModelEmaV3 | None
    mixup: Mixup | None
    loss_fn: torch.nn.Module
    train_ds: Dataset
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: ResumableSampler
    classes: list[str]
    data_config: dict[str, Any]
    stop: StopFlag = field(default_factory=StopFlag)
    saved: str = ""  # what output/last.pth holds, in words ("" while this run has written none)
    train_images: int = 0
    train_seconds: float = 0.0


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


def all_ranks_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    """Whether the loss is finite on every rank (so that all ranks skip or stop together)."""
    finite = torch.isfinite(loss.detach()).float().reshape(1).cpu()
    if info.enabled:
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    return bool(finite.item())


def train_one_epoch(job: Job, state: TrainState, show_progress: bool = False) -> dict[str, float]:
    """One pass over the training set (from batch `state.batch` on, after a mid-epoch checkpoint) with gradient
    accumulation, clipping, per-update LR and EMA updates. On SIGTERM it finishes the optimizer step, writes a
    mid-epoch last.pth and raises `Interrupted`."""
    cfg, model, optimizer = job.cfg, job.train_model, job.optimizer
    model.train()
    totals = EpochTotals(**state.totals) if state.batch else EpochTotals()
    num_batches, _ = steps_per_epoch(cfg, job.train_loader)
    start = state.batch
    batches: Iterator = iter(job.train_loader)
    bar = tqdm(
        total=num_batches,
        initial=start,
        desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
        disable=not show_progress,
        leave=False,
    )
    optimizer.zero_grad(set_to_none=True)
    pending = skip = False  # a backward pass since the last optimizer step; a non-finite loss in this step
    for index in range(start, num_batches):
        images, labels, n_skipped = next(batches)
        totals.skipped += n_skipped
        last_micro = (index + 1) % cfg.accum_steps == 0 or index + 1 == num_batches
        if len(labels):
            loss = _forward_backward(job, images, labels, last_micro, totals)
            if loss is None:
                where = f"step {state.step + 1} (epoch {state.epoch + 1}, batch {index + 1}/{num_batches})"
                if cfg.on_nonfinite == "stop":
                    kept = f"last.pth is unchanged ({job.saved})" if job.saved else "no checkpoint was written yet"
                    raise VisionGatesError(
                        f"loss became non-finite at {where}; stopped before updating the weights: "
                        f"{kept}. Lower --lr, or pass --on-nonfinite skip to skip such steps"
                    )
                if not skip:
                    totals.nonfinite += 1
                    log.warning("skipping %s: non-finite loss (%d step(s) this epoch)", where, totals.nonfinite)
                skip = True
            else:
                pending = True
                totals.loss_sum += loss * len(labels)
                totals.seen += len(labels)
        if last_micro and (pending or skip):
            if skip:  # the whole step is skipped: gradients of its other micro-batches are dropped too
                optimizer.zero_grad(set_to_none=True)
            else:
                _optimizer_step(job, state)
            pending = skip = False
            if job.stop.requested(job.info):
                state.batch, state.totals = index + 1, dataclasses.asdict(totals)
                _save_last(job, state)
                raise Interrupted(
                    f"SIGTERM: finished step {state.step} and wrote {job.output / 'last.pth'} ({job.saved})",
                    exit_status=143,
                    resume=("--resume", "auto"),
                )
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{totals.loss_sum / max(totals.seen, 1):.4f}", lr=f"{lr:.2e}")
        bar.update()
    bar.close()
    state.batch, state.totals = 0, {}
    return totals.stats()


def _forward_backward(job: Job, images, labels, last_micro: bool, totals: EpochTotals) -> float | None:
    """Forward and backward of one micro-batch (loss scaled for accumulation); returns the loss, or None when it is
    not finite on some rank (then nothing is backpropagated)."""
    cfg, model = job.cfg, job.train_model
    images, labels = images.to(job.device), labels.to(job.device)
    targets = labels
    if job.mixup is not None:
        images, targets = job.mixup(images, labels)
    defer_sync = isinstance(model, DistributedDataParallel) and not last_micro
    with model.no_sync() if defer_sync else contextlib.nullcontext():
        with autocast(job.device, cfg.amp):
            logits = model(images)
        loss = job.loss_fn(logits.float(), targets)
        extra = auxiliary_loss(model)
        if extra is not None:
            loss = loss + extra
        mask = gate_mask(model)
        if mask is not None:
            totals.fine_regions += float(mask.detach().sum())
            totals.regions += mask.numel()
        if not all_ranks_finite(loss, job.info):
            return None
        (loss / cfg.accum_steps).backward()
    return loss.item()


def _optimizer_step(job: Job, state: TrainState) -> None:
    """Clip, step, zero the gradients, then the per-update LR schedule and the EMA."""
    if job.cfg.clip_grad is not None:
        dispatch_clip_grad(job.model.parameters(), job.cfg.clip_grad, mode=job.cfg.clip_mode)
    job.optimizer.step()
    job.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    job.scheduler.step_update(num_updates=state.step)
    if job.ema is not None:
        job.ema.update(job.model, step=state.step)


@torch.no_grad()
def evaluate(model, loader, num_classes: int, device, amp: str = "none") -> tuple[ClassificationMeter, int]:
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


# ---------------------------------------------------------------------------------------------------- checkpoints
def _inference_entries(job: Job, state: TrainState, model: torch.nn.Module) -> dict[str, Any]:
    """What evaluation, export and --pretrained need: weights, model name, classes, preprocessing, config."""
    return {
        "model": model.state_dict(),
        "model_name": job.cfg.model,
        "classes": list(job.classes),
        "num_classes": len(job.classes),
        "data_config": job.data_config,
        "config": job.cfg.to_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "best_top1": state.best_top1,
    }


def _training_checkpoint(job: Job, state: TrainState) -> dict[str, Any]:
    """last.pth: the inference entries plus everything an exact resume needs (also in the middle of an epoch)."""
    return {
        **_inference_entries(job, state, job.model),
        "optimizer": job.optimizer.state_dict(),
        "scheduler": job.scheduler.state_dict(),
        "ema": job.ema.module.state_dict() if job.ema is not None else None,
        "history": state.history,
        "rng": rng_state(),
        "batch": state.batch,  # batches of epoch `epoch + 1` done (0: at an epoch boundary)
        "sampler_position": state.batch * job.cfg.batch_size,  # samples of this rank's shard already drawn
        "totals": state.totals,
        "world_size": job.info.world_size,
    }


def _write(job: Job, state_dict: dict[str, Any], name: str) -> None:
    """save_checkpoint (atomic), with a failed write (disk full...) turned into one line that says what is kept."""
    path = job.output / name
    try:
        save_checkpoint(state_dict, path)
    except OSError as exc:
        if name == "last.pth":
            kept = f"the previous last.pth is intact ({job.saved})" if job.saved else "no last.pth was written before"
        else:
            kept = f"the previous {name} is intact" if path.is_file() else f"no {name} was written before"
        raise CheckpointWriteError(f"could not write {path} ({exc.strerror or exc}); {kept}") from None


def _describe_saved(state: TrainState, num_batches: int) -> str:
    if state.batch:
        return f"epoch {state.epoch + 1} up to batch {state.batch}/{num_batches}, step {state.step}"
    return f"epoch {state.epoch}, step {state.step}"


def _save_last(job: Job, state: TrainState) -> None:
    """Write last.pth on rank 0 (other ranks wait for it, so that a stopping group never cuts the write short)."""
    if job.info.is_main:
        _write(job, _training_checkpoint(job, state), "last.pth")
    if job.info.enabled:
        torch.distributed.barrier()
    job.saved = _describe_saved(state, steps_per_epoch(job.cfg, job.train_loader)[0])


def _resume_path(cfg: TrainConfig) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        path = Path(cfg.output) / "last.pth"
        return path if path.is_file() else None
    return Path(cfg.resume)


def restore(job: Job, path: Path) -> TrainState:
    """Load a last.pth into the job (weights, optimizer, scheduler, EMA, RNG); returns the state to continue from."""
    ckpt = load_checkpoint(path)
    cfg = job.cfg
    if ckpt.get("model_name") != cfg.model:
        raise VisionGatesError(f"'{path}' was written for model '{ckpt.get('model_name')}', not '{cfg.model}'")
    if "optimizer" not in ckpt or "rng" not in ckpt:
        raise CheckpointError(
            f"'{path}' holds weights only (best.pth has no optimizer or scheduler state): resume "
            f"from last.pth, or start from these weights with --pretrained {path}"
        )
    state = TrainState(
        ckpt["epoch"],
        ckpt["step"],
        ckpt["best_top1"],
        list(ckpt["history"]),
        int(ckpt.get("batch", 0)),
        dict(ckpt.get("totals") or {}),
    )
    if state.batch:
        saved = ckpt.get("config") or {}
        changed = [
            k
            for k in ("batch_size", "accum_steps", "max_steps_per_epoch", "seed", "data")
            if saved.get(k) != getattr(cfg, k)
        ]
        if ckpt.get("world_size", 1) != job.info.world_size:
            changed.append("number of processes")
        if changed:
            raise VisionGatesError(
                f"'{path}' was written in the middle of an epoch; resuming it needs the same "
                f"{', '.join(changed)} as the interrupted run"
            )
    load_model_weights(job.model, ckpt["model"], source=f"checkpoint '{path}'")
    job.optimizer.load_state_dict(ckpt["optimizer"])
    job.scheduler.load_state_dict(ckpt["scheduler"])
    if job.ema is not None and ckpt.get("ema") is not None:
        job.ema.module.load_state_dict(ckpt["ema"])
    set_rng_state(ckpt["rng"])
    job.saved = _describe_saved(state, steps_per_epoch(cfg, job.train_loader)[0])
    if job.info.is_main:
        log.info("resumed from %s (%s)", path, job.saved)
    return state


# ---------------------------------------------------------------------------------------------------------- run
def _write_logs(history: list[dict[str, float]], output: Path) -> None:
    (output / "log.json").write_text(json.dumps(history, indent=1))
    with open(output / "log.csv", "w", newline="") as f:
        keys = list(dict.fromkeys(k for row in history for k in row))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    plot_curves(history, output / "curves.png")


def build_job(cfg: TrainConfig, device: torch.device, info: DistInfo) -> Job:
    """Datasets, loaders, model, optimizer, scheduler, EMA, Mixup and loss for `cfg`."""
    output = Path(cfg.output)
    if info.is_main:
        output.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temporaries(output):  # a run killed (kill -9) while writing a checkpoint
            log.info("removed %s, left by an interrupted checkpoint write", stale)
    train_ds, val_ds = build_datasets(cfg)
    classes = list(train_ds.classes)
    model = build_model(cfg, len(classes), device)
    data_config = timm.data.resolve_data_config({}, model=model)
    data_config.update(input_size=(3, cfg.img_size, cfg.img_size), crop_pct=cfg.crop_pct)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    train_loader, val_loader, sampler = build_loaders(cfg, train_ds, val_ds, info)
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=cfg.sched,
        num_epochs=cfg.epochs,
        warmup_epochs=cfg.warmup_epochs,
        warmup_lr=cfg.warmup_lr,
        min_lr=cfg.min_lr,
        step_on_epochs=False,
        updates_per_epoch=steps_per_epoch(cfg, train_loader)[1],
    )
    mixup = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            prob=cfg.mixup_prob,
            label_smoothing=cfg.smoothing,
            num_classes=len(classes),
        )
        loss_fn = SoftTargetCrossEntropy()
    elif cfg.smoothing > 0:
        loss_fn = LabelSmoothingCrossEntropy(cfg.smoothing)
    else:
        loss_fn = torch.nn.CrossEntropyLoss()
    return Job(
        cfg=cfg,
        device=device,
        info=info,
        output=output,
        model=model,
        train_model=DistributedDataParallel(model) if info.enabled else model,
        optimizer=optimizer,
        scheduler=scheduler,
        ema=ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None,
        mixup=mixup,
        loss_fn=loss_fn,
        train_ds=train_ds,
        train_loader=train_loader,
        val_loader=val_loader,
        sampler=sampler,
        classes=classes,
        data_config=data_config,
    )


def run_epoch(job: Job, state: TrainState, epoch: int) -> dict[str, float]:
    """Train epoch `epoch` (0-based; from a mid-epoch position if restored), then validate; returns its log row."""
    cfg, info = job.cfg, job.info
    job.sampler.set_epoch(epoch, skip=state.batch * cfg.batch_size)
    job.train_ds.set_epoch(epoch)
    tick = time.perf_counter()
    stats = train_one_epoch(job, state, show_progress=cfg.progress and info.is_main)
    job.train_seconds += time.perf_counter() - tick
    if info.enabled:  # BatchNorm running stats drift apart per rank: average them (timm's distribute_bn)
        distribute_bn(job.model, info.world_size, reduce=True)
    job.train_images += stats["train_images"] * info.world_size
    state.epoch = epoch + 1
    job.scheduler.step(state.epoch)
    meter, val_skipped = evaluate(job.model, job.val_loader, len(job.classes), job.device, cfg.amp)
    row = {
        "epoch": state.epoch,
        "lr": job.optimizer.param_groups[0]["lr"],
        **stats,
        **{f"val_{k}": v for k, v in meter.summary().items()},
        "val_skipped": val_skipped,
        "epoch_seconds": round(time.perf_counter() - tick, 3),
    }
    if job.ema is not None:
        ema_meter, _ = evaluate(job.ema.module, job.val_loader, len(job.classes), job.device, cfg.amp)
        row["val_ema_top1"] = ema_meter.summary()["top1"]
    return row


def save_epoch(job: Job, state: TrainState, row: dict[str, float]) -> None:
    """Record the epoch's row; write last.pth (full state), best.pth (weights and what inference needs, when the
    score improved) and the logs."""
    score = max(row["val_top1"], row.get("val_ema_top1", -1.0))
    improved = score > state.best_top1
    state.best_top1 = max(state.best_top1, score)
    state.history.append(row)
    _save_last(job, state)
    if not job.info.is_main:
        return
    if improved:
        use_ema = job.ema is not None and row.get("val_ema_top1", -1.0) >= row["val_top1"]
        best = _inference_entries(job, state, job.ema.module if use_ema else job.model)
        _write(job, {**best, "weights": "ema" if use_ema else "model", "val_top1": score}, "best.pth")
    _write_logs(state.history, job.output)
    notes = "".join(
        [
            f", val fine share {row['val_fine_share']:.3f}" if "val_fine_share" in row else "",
            f", {row['skipped']} unreadable image(s) skipped" if row["skipped"] else "",
            f", {row['nonfinite_skipped']} non-finite step(s) skipped" if row.get("nonfinite_skipped") else "",
        ]
    )
    log.info(
        "epoch %d/%d: train loss %.4f, val loss %.4f, val top-1 %.2f%%%s",
        state.epoch,
        job.cfg.epochs,
        row["train_loss"],
        row["val_loss"],
        row["val_top1"],
        notes,
    )


def summarize(job: Job, state: TrainState, started: float) -> dict[str, Any]:
    """The run's summary (written to summary.json by rank 0); `rank` tells the CLI which process prints it."""
    summary = {
        "epochs_done": state.epoch,
        "final_top1": state.history[-1]["val_top1"] if state.history else None,
        "best_top1": state.best_top1,
        "wall_seconds": time.perf_counter() - started,
        "train_images_per_second": job.train_images / job.train_seconds if job.train_seconds else math.nan,
        "rank_checksums": gather_floats(parameter_checksum(job.model), job.info),
        "output": str(job.output),
    }
    if job.info.is_main:
        (job.output / "summary.json").write_text(json.dumps(summary, indent=1))
    return {**summary, "rank": job.info.rank}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run a training job; returns a summary (best/final accuracy, epochs, wall time, throughput, paths, rank).

    SIGTERM finishes the current optimizer step, writes a mid-epoch last.pth and raises `Interrupted` (exit 143
    under the CLI); `--resume auto` then continues to the same weights as an uninterrupted run.
    """
    device = resolve_device(cfg.device)
    info = init_distributed(device)
    try:
        with catch_sigterm() as stop:
            return _train(cfg, device, info, stop)
    finally:
        cleanup_distributed()


def _train(cfg: TrainConfig, device: torch.device, info: DistInfo, stop: StopFlag) -> dict[str, Any]:
    seed_everything(cfg.seed, cfg.deterministic)
    check_model_name(cfg.model)
    job = build_job(cfg, device, info)
    job.stop = stop
    resume = _resume_path(cfg)
    state = restore(job, resume) if resume is not None else TrainState()
    start_epoch, started = state.epoch, time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if cfg.stop_after is not None and epoch - start_epoch >= cfg.stop_after:
                break
            save_epoch(job, state, run_epoch(job, state, epoch))
            if job.stop.requested(info) and state.epoch < cfg.epochs:
                raise Interrupted(
                    f"SIGTERM: wrote {job.output / 'last.pth'} ({job.saved})",
                    exit_status=143,
                    resume=("--resume", "auto"),
                )
    except KeyboardInterrupt:
        kept = f"{job.output / 'last.pth'} holds {job.saved}" if job.saved else "no checkpoint was written"
        raise Interrupted(kept, exit_status=130, resume=("--resume", "auto") if job.saved else None) from None
    return summarize(job, state, started)
