"""The one training loop of every non-mm task (classification, restoration, Attention U-Net segmentation).

`run(task)` runs a whole job in named steps (`build_job`, `restore`, `run_epoch`, `save_epoch`, `summarize`) over
what a `Task` (visiongates.engine.task) supplies: data, model, loss and evaluation. The engine owns the rest:
timm optimizer and per-update LR schedule (epochs, or a `steps` budget), gradient accumulation and clipping, EMA,
autocast, per-epoch CSV/JSON log and PNG curves, atomic last.pth (full training state) and best.pth (weights and
what inference needs, chosen on the task's metric), exact resumption (`cfg.resume`, also from the middle of an
epoch after SIGTERM: RNG state and sampler position), non-finite losses stopped or skipped (`cfg.on_nonfinite`),
DDP through torchrun (gloo on CPU). `evaluate_only(task)` evaluates a model without training.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, create_scheduler_v2
from timm.utils import ModelEmaV3, dispatch_clip_grad, distribute_bn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from visiongates.errors import CheckpointError, CheckpointWriteError, Interrupted, VisionGatesError

from .checkpoint import load_checkpoint, load_model_weights, remove_stale_temporaries, save_checkpoint
from .config import TrainConfig
from .distributed import DistInfo, cleanup_distributed, gather_floats, init_distributed, parameter_checksum
from .plots import plot_curves
from .setup import StopFlag, catch_sigterm, ignore_sigterm_in_worker, rng_state, set_rng_state, setup
from .task import Task

log = logging.getLogger("visiongates.train")

# options a mid-epoch checkpoint must share with the run that resumes it (beyond the task's resume_keys)
RESUME_KEYS = ("batch_size", "accum_steps", "max_steps_per_epoch", "steps", "seed")


# ----------------------------------------------------------------------------------------------------------- data
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


def build_loaders(
    task: Task, train_ds: Dataset, val_ds: Dataset, info: DistInfo
) -> tuple[DataLoader, DataLoader, ResumableSampler]:
    """Loaders whose order depends only on (seed, epoch): a DistributedSampler also serves the 1-process case.

    Each loader draws its workers' seeds from its own generator, not from torch's global RNG, so that starting an
    iterator does not move the RNG state that a checkpoint restores.
    """
    cfg = task.cfg
    sampler = ResumableSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
    common = dict(
        num_workers=cfg.workers,
        collate_fn=task.collate_fn(),
        persistent_workers=False,
        worker_init_fn=ignore_sigterm_in_worker,
    )
    train_loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        **common,
    )
    if len(train_loader) == 0:
        raise VisionGatesError(
            f"batch size {cfg.batch_size} x {info.world_size} process(es) exceeds the {len(train_ds)} training images"
        )
    return train_loader, val_loader(task, val_ds, info), sampler


def val_loader(task: Task, val_ds: Dataset, info: DistInfo) -> DataLoader:
    """The validation loader: this rank's shard, in order, without padding duplicates."""
    indices = list(range(info.rank, len(val_ds), info.world_size))
    return DataLoader(
        torch.utils.data.Subset(val_ds, indices),
        batch_size=task.val_batch_size(),
        num_workers=task.cfg.workers,
        collate_fn=task.collate_fn(),
        persistent_workers=False,
        worker_init_fn=ignore_sigterm_in_worker,
        generator=torch.Generator().manual_seed(task.cfg.seed),
    )


# ---------------------------------------------------------------------------------------------------- state
@dataclass
class TrainState:
    """Everything that a resumed run restores."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    best: float | None = None  # best validation score of the task's metric so far
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    evals: list[dict[str, Any]] = field(default_factory=list)  # one entry per validation: step, epoch, metrics
    batch: int = 0  # batches of epoch `epoch + 1` already trained (> 0 in a mid-epoch checkpoint only)
    totals: dict[str, Any] = field(default_factory=dict)  # that epoch's running sums, so its log row is exact


@dataclass
class EpochTotals:
    """Running sums of one training epoch (saved in a mid-epoch checkpoint)."""

    loss_sum: float = 0.0
    seen: int = 0
    skipped: int = 0  # unreadable images
    nonfinite: int = 0  # steps skipped for a NaN / inf loss (--on-nonfinite skip)
    extra: dict[str, float] = field(default_factory=dict)  # the task's own sums (Task.training_loss)

    def stats(self, task: Task) -> dict[str, float]:
        out = {"train_loss": self.loss_sum / max(self.seen, 1), "train_images": self.seen, "skipped": self.skipped}
        if self.nonfinite:
            out["nonfinite_skipped"] = self.nonfinite
        return {**out, **task.train_stats(self.extra)}


@dataclass
class Job:
    """The parts of one training run, built once by `build_job`."""

    task: Task
    cfg: TrainConfig
    device: torch.device
    info: DistInfo
    output: Path
    model: torch.nn.Module
    train_model: torch.nn.Module  # `model`, wrapped in DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: ModelEmaV3 | None
    train_ds: Dataset
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: ResumableSampler
    epochs: int  # epochs of the whole run (cfg.epochs, or what the step budget takes)
    stop: StopFlag = field(default_factory=StopFlag)
    saved: str = ""  # what output/last.pth holds, in words ("" while this run has written none)
    train_images: int = 0
    train_seconds: float = 0.0


# -------------------------------------------------------------------------------------------------------- steps
def steps_per_epoch(cfg: TrainConfig, loader: DataLoader) -> tuple[int, int]:
    """(batches drawn, optimizer updates) per full epoch, honouring max_steps_per_epoch and accumulation."""
    batches = len(loader)
    if cfg.max_steps_per_epoch is not None:
        batches = min(batches, cfg.max_steps_per_epoch * cfg.accum_steps)
    return batches, math.ceil(batches / cfg.accum_steps)


def planned_epochs(cfg: TrainConfig, loader: DataLoader) -> int:
    """cfg.epochs, or with a step budget the epochs it takes: ceil(steps / updates per epoch)."""
    if cfg.steps is None:
        return cfg.epochs
    return math.ceil(cfg.steps / steps_per_epoch(cfg, loader)[1])


def epoch_batches(job: Job, epoch: int) -> int:
    """Batches that epoch `epoch` (0-based) draws: a full epoch, or what is left of the step budget."""
    batches, updates = steps_per_epoch(job.cfg, job.train_loader)
    if job.cfg.steps is None:
        return batches
    return min(batches, (job.cfg.steps - epoch * updates) * job.cfg.accum_steps)


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
    cfg, optimizer = job.cfg, job.optimizer
    job.train_model.train()
    totals = EpochTotals(**state.totals) if state.batch else EpochTotals()
    num_batches = epoch_batches(job, state.epoch)
    start = state.batch
    batches: Iterator = iter(job.train_loader)
    bar = tqdm(
        total=num_batches,
        initial=start,
        desc=f"epoch {state.epoch + 1}/{job.epochs}",
        disable=not show_progress,
        leave=False,
    )
    optimizer.zero_grad(set_to_none=True)
    pending = skip = False  # a backward pass since the last optimizer step; a non-finite loss in this step
    for index in range(start, num_batches):
        batch = next(batches)
        size, n_skipped = job.task.batch_size_of(batch)
        totals.skipped += n_skipped
        last_micro = (index + 1) % cfg.accum_steps == 0 or index + 1 == num_batches
        if size:
            loss = _forward_backward(job, batch, last_micro, totals)
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
                totals.loss_sum += loss * size
                totals.seen += size
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
    return totals.stats(job.task)


def _forward_backward(job: Job, batch: Any, last_micro: bool, totals: EpochTotals) -> float | None:
    """Forward and backward of one micro-batch (loss scaled for accumulation); returns the loss, or None when it is
    not finite on some rank (then nothing is backpropagated)."""
    model = job.train_model
    defer_sync = isinstance(model, DistributedDataParallel) and not last_micro
    with model.no_sync() if defer_sync else contextlib.nullcontext():
        loss = job.task.training_loss(model, batch, totals.extra)
        if not all_ranks_finite(loss, job.info):
            return None
        (loss / job.cfg.accum_steps).backward()
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


# ---------------------------------------------------------------------------------------------------- checkpoints
def _inference_entries(job: Job, state: TrainState, model: torch.nn.Module) -> dict[str, Any]:
    """What evaluation, export and --pretrained need: weights, model name, config and the task's entries."""
    return {
        "model": model.state_dict(),
        "model_name": job.cfg.model,
        "task": job.cfg.task,
        **job.task.checkpoint_entries(),
        "config": job.cfg.to_dict(),
        "epoch": state.epoch,
        "step": state.step,
        f"best_{job.task.metric}": state.best,
    }


def _training_checkpoint(job: Job, state: TrainState) -> dict[str, Any]:
    """last.pth: the inference entries plus everything an exact resume needs (also in the middle of an epoch)."""
    return {
        **_inference_entries(job, state, job.model),
        "optimizer": job.optimizer.state_dict(),
        "scheduler": job.scheduler.state_dict(),
        "ema": job.ema.module.state_dict() if job.ema is not None else None,
        "history": state.history,
        "evals": state.evals,
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


def _describe_saved(job: Job, state: TrainState) -> str:
    if state.batch:
        num_batches = epoch_batches(job, state.epoch)
        return f"epoch {state.epoch + 1} up to batch {state.batch}/{num_batches}, step {state.step}"
    return f"epoch {state.epoch}, step {state.step}"


def _save_last(job: Job, state: TrainState) -> None:
    """Write last.pth on rank 0 (other ranks wait for it, so that a stopping group never cuts the write short)."""
    if job.info.is_main:
        _write(job, _training_checkpoint(job, state), "last.pth")
    if job.info.enabled:
        torch.distributed.barrier()
    job.saved = _describe_saved(job, state)


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
        epoch=ckpt["epoch"],
        step=ckpt["step"],
        best=ckpt.get(f"best_{job.task.metric}"),
        history=list(ckpt["history"]),
        evals=list(ckpt.get("evals") or []),
        batch=int(ckpt.get("batch", 0)),
        totals=dict(ckpt.get("totals") or {}),
    )
    if state.batch:
        saved = ckpt.get("config") or {}
        changed = [k for k in (*RESUME_KEYS, *job.task.resume_keys) if saved.get(k) != getattr(cfg, k)]
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
    job.saved = _describe_saved(job, state)
    if job.info.is_main:
        log.info("resumed from %s (%s)", path, job.saved)
    return state


# ---------------------------------------------------------------------------------------------------------- run
def _write_logs(job: Job, history: list[dict[str, float]]) -> None:
    output = job.output
    (output / "log.json").write_text(json.dumps(history, indent=1))
    with open(output / "log.csv", "w", newline="") as f:
        keys = list(dict.fromkeys(k for row in history for k in row))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    plot_curves(history, output / "curves.png", metric=job.task.metric)


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, updates_per_epoch: int, epochs: int) -> Any:
    """Per-update LR: with a step budget timm's cosine over `steps` updates after `warmup_steps`; otherwise
    timm's create_scheduler_v2 over `epochs` (cfg.sched, warmup_epochs)."""
    warmup_lr = cfg.warmup_lr if cfg.warmup_lr is not None else cfg.lr * 0.01
    if cfg.steps is not None:
        if cfg.sched != "cosine":
            raise VisionGatesError(f"a step budget (steps) schedules the LR by cosine only, not sched '{cfg.sched}'")
        return CosineLRScheduler(
            optimizer,
            t_initial=max(cfg.steps, 1),
            lr_min=cfg.min_lr,
            warmup_t=cfg.warmup_steps,
            warmup_lr_init=warmup_lr,
            t_in_epochs=False,
        )
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=cfg.sched,
        num_epochs=epochs,
        warmup_epochs=cfg.warmup_epochs,
        warmup_lr=warmup_lr,
        min_lr=cfg.min_lr,
        step_on_epochs=False,
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler


def _prepare_output(cfg: TrainConfig, info: DistInfo) -> Path:
    output = Path(cfg.output)
    if info.is_main:
        output.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temporaries(output):  # a run killed (kill -9) while writing a checkpoint
            log.info("removed %s, left by an interrupted checkpoint write", stale)
    return output


def build_job(task: Task, device: torch.device, info: DistInfo) -> Job:
    """Datasets, loaders, model, optimizer, scheduler and EMA for the task's config."""
    cfg = task.cfg
    output = _prepare_output(cfg, info)
    train_ds, val_ds = task.build_datasets()
    model = task.build_model(train_ds)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    train_loader, val_loader_, sampler = build_loaders(task, train_ds, val_ds, info)
    epochs = planned_epochs(cfg, train_loader)
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch(cfg, train_loader)[1], epochs)
    return Job(
        task=task,
        cfg=cfg,
        device=device,
        info=info,
        output=output,
        model=model,
        train_model=DistributedDataParallel(model) if info.enabled else model,
        optimizer=optimizer,
        scheduler=scheduler,
        ema=ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None,
        train_ds=train_ds,
        train_loader=train_loader,
        val_loader=val_loader_,
        sampler=sampler,
        epochs=epochs,
    )


def validate(job: Job, state: TrainState) -> dict[str, Any]:
    """Evaluate the model (and the EMA) at the current step; records the result in `state.evals`."""
    metrics = job.task.evaluate(job.model, job.val_loader, state.step, job.output if job.info.is_main else None)
    entry = {"step": state.step, "epoch": state.epoch, **metrics}
    if job.ema is not None:
        entry[f"ema_{job.task.metric}"] = job.task.evaluate(job.ema.module, job.val_loader, state.step, None)[
            job.task.metric
        ]
    state.evals.append(entry)
    if job.info.is_main:
        log.info("step %d: %s", state.step, job.task.describe(metrics))
    return entry


def run_epoch(job: Job, state: TrainState, epoch: int) -> dict[str, float]:
    """Train epoch `epoch` (0-based; from a mid-epoch position if restored), then validate when due; returns its
    log row."""
    cfg, info = job.cfg, job.info
    job.sampler.set_epoch(epoch, skip=state.batch * cfg.batch_size)
    if hasattr(job.train_ds, "set_epoch"):
        job.train_ds.set_epoch(epoch)
    tick = time.perf_counter()
    stats = train_one_epoch(job, state, show_progress=cfg.progress and info.is_main)
    job.train_seconds += time.perf_counter() - tick
    if info.enabled:  # BatchNorm running stats drift apart per rank: average them (timm's distribute_bn)
        distribute_bn(job.model, info.world_size, reduce=True)
    job.train_images += stats["train_images"] * info.world_size
    state.epoch = epoch + 1
    job.scheduler.step(state.epoch)
    row = {"epoch": state.epoch, "step": state.step, "lr": job.optimizer.param_groups[0]["lr"], **stats}
    due = state.epoch == job.epochs or (cfg.eval_every and state.epoch % cfg.eval_every == 0)
    if due:
        entry = validate(job, state)
        row.update({f"val_{k}": v for k, v in entry.items() if k not in ("step", "epoch")})
    row["epoch_seconds"] = round(time.perf_counter() - tick, 3)
    return row


def _better(job: Job, score: float, than: float | None) -> bool:
    if than is None:
        return True
    return score > than if job.task.mode == "max" else score < than


def save_epoch(job: Job, state: TrainState, row: dict[str, float]) -> None:
    """Record the epoch's row; write last.pth (full state), best.pth (weights and what inference needs, when the
    task's metric improved) and the logs."""
    metric = job.task.metric
    improved, use_ema = False, False
    if f"val_{metric}" in row:
        score = row[f"val_{metric}"]
        ema_score = row.get(f"val_ema_{metric}")
        if ema_score is not None and not _better(job, score, ema_score):
            score, use_ema = ema_score, True
        improved = _better(job, score, state.best)
        if improved:
            state.best = score
    state.history.append(row)
    _save_last(job, state)
    if not job.info.is_main:
        return
    if improved:
        best = _inference_entries(job, state, job.ema.module if use_ema else job.model)
        _write(job, {**best, "weights": "ema" if use_ema else "model", f"val_{metric}": state.best}, "best.pth")
    _write_logs(job, state.history)
    notes = "".join(
        [
            f", val {job.task.describe({k[4:]: v for k, v in row.items() if k.startswith('val_')})}"
            if f"val_{metric}" in row
            else "",
            f", {row['skipped']} unreadable image(s) skipped" if row["skipped"] else "",
            f", {row['nonfinite_skipped']} non-finite step(s) skipped" if row.get("nonfinite_skipped") else "",
        ]
    )
    log.info("epoch %d/%d (step %d): train loss %.4f%s", state.epoch, job.epochs, state.step, row["train_loss"], notes)


def summarize(job: Job, state: TrainState, started: float) -> dict[str, Any]:
    """The run's summary (written to summary.json by rank 0); `rank` tells the CLI which process prints it."""
    metric = job.task.metric
    final = [e for e in state.evals if e["step"] == state.step]
    summary = {
        "task": job.cfg.task,
        "epochs_done": state.epoch,
        "steps_done": state.step,
        f"final_{metric}": final[-1][metric] if final else None,
        f"best_{metric}": state.best,
        "evals": state.evals,
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": job.train_seconds,
        "train_images_per_second": job.train_images / job.train_seconds if job.train_seconds else math.nan,
        "rank_checksums": gather_floats(parameter_checksum(job.model), job.info),
        "output": str(job.output),
        **job.task.summary(state.history, state.evals),
    }
    if job.info.is_main:
        (job.output / "summary.json").write_text(json.dumps(summary, indent=1))
        job.task.write_results(job.output, summary)
    return {**summary, "rank": job.info.rank}


def run(task: Task) -> dict[str, Any]:
    """Train the task; returns a summary (final/best metric, evaluations, epochs, wall time, throughput, paths, rank).

    SIGTERM finishes the current optimizer step, writes a mid-epoch last.pth and raises `Interrupted` (exit 143
    under the CLI); `--resume auto` then continues to the same weights as an uninterrupted run.
    """
    device = setup(task.cfg)
    info = init_distributed(device)
    try:
        if info.enabled and not task.supports_ddp:
            raise VisionGatesError(f"the {task.cfg.task} task trains in one process only (not under torchrun)")
        task.bind(device)
        with catch_sigterm() as stop:
            return _train(task, device, info, stop)
    finally:
        cleanup_distributed()


def _train(task: Task, device: torch.device, info: DistInfo, stop: StopFlag) -> dict[str, Any]:
    cfg = task.cfg
    job = build_job(task, device, info)
    job.stop = stop
    resume = _resume_path(cfg)
    state = restore(job, resume) if resume is not None else TrainState()
    start_epoch, started = state.epoch, time.perf_counter()
    try:
        if task.evaluate_before_training and state.step == 0 and not state.evals:
            validate(job, state)
        for epoch in range(start_epoch, job.epochs):
            if cfg.stop_after is not None and epoch - start_epoch >= cfg.stop_after:
                break
            save_epoch(job, state, run_epoch(job, state, epoch))
            if job.stop.requested(info) and state.epoch < job.epochs:
                raise Interrupted(
                    f"SIGTERM: wrote {job.output / 'last.pth'} ({job.saved})",
                    exit_status=143,
                    resume=("--resume", "auto"),
                )
    except KeyboardInterrupt:
        kept = f"{job.output / 'last.pth'} holds {job.saved}" if job.saved else "no checkpoint was written"
        raise Interrupted(kept, exit_status=130, resume=("--resume", "auto") if job.saved else None) from None
    return summarize(job, state, started)


def evaluate_only(task: Task) -> dict[str, Any]:
    """Evaluate the task's model (`cfg.pretrained` weights) on its validation set, one process; the result is
    also written to <output>/summary.json (and the task's result files)."""
    device = setup(task.cfg)
    task.bind(device)
    info = DistInfo()
    output = _prepare_output(task.cfg, info)
    _, val_ds = task.build_datasets(need_train=False)
    model = task.build_model(None)
    metrics = task.evaluate(model, val_loader(task, val_ds, info), 0, output)
    summary = {"task": task.cfg.task, "evals": [{"step": 0, "epoch": 0, **metrics}], "output": str(output)}
    (output / "summary.json").write_text(json.dumps(summary, indent=1))
    task.write_results(output, summary)
    return metrics
