"""What a task gives the one training loop (visiongates.engine.trainer): data, model, loss, evaluation, and what
its checkpoints and summaries record. Classification, restoration and Attention U-Net segmentation subclass `Task`
in visiongates.tasks."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .config import TrainConfig
from .setup import autocast


class Task:
    """The task-specific half of a run; the engine owns the loop, set-up, checkpoints, resume and SIGTERM.

    Class attributes: `metric` (the evaluation entry best.pth is chosen on), `mode` ('max' or 'min'),
    `resume_keys` (options a mid-epoch resume must share with the interrupted run, beyond the engine's own),
    `evaluate_before_training` (also validate at step 0), `supports_ddp`.
    """

    name: str = ""
    metric: str = "loss"
    mode: str = "min"
    resume_keys: tuple[str, ...] = ()
    evaluate_before_training: bool = False
    supports_ddp: bool = True

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = torch.device("cpu")

    # -- set by the engine
    def bind(self, device: torch.device) -> None:
        """The device the run uses (called once, before any build_* method)."""
        self.device = device

    def autocast(self) -> contextlib.AbstractContextManager:
        """The run's autocast context (cfg.amp) on its device."""
        return autocast(self.device, self.cfg.amp)

    # -- data and model
    def build_datasets(self, need_train: bool = True) -> tuple[Dataset | None, Dataset]:
        """(train, val) datasets; train may be None when `need_train` is False (evaluation only). Datasets with a
        `set_epoch(epoch)` method get it called before every epoch."""
        raise NotImplementedError

    def collate_fn(self) -> Any:
        """The loaders' collate function (None: torch's default)."""
        return None

    def val_batch_size(self) -> int:
        return self.cfg.batch_size

    def build_model(self, train_ds: Dataset | None) -> nn.Module:
        """The model on `self.device`, with `cfg.pretrained` weights when given."""
        raise NotImplementedError

    # -- training
    def batch_size_of(self, batch: Any) -> tuple[int, int]:
        """(samples in the batch, samples skipped while loading it)."""
        raise NotImplementedError

    def training_loss(self, model: nn.Module, batch: Any, extra: dict[str, float]) -> torch.Tensor:
        """Forward pass and loss of one micro-batch (`model` may be DDP-wrapped); `extra` collects the task's
        per-epoch training sums (saved in mid-epoch checkpoints)."""
        raise NotImplementedError

    def train_stats(self, extra: dict[str, float]) -> dict[str, float]:
        """Log entries derived from `extra` at the end of an epoch."""
        return {}

    # -- evaluation
    def evaluate(self, model: nn.Module, loader: Any, step: int, output: Path | None) -> dict[str, Any]:
        """Metrics of `model` over the validation loader (summed over ranks where it matters); `output` is the
        run folder for pictures (None: write none)."""
        raise NotImplementedError

    def describe(self, metrics: dict[str, Any]) -> str:
        """One log line's worth of an evaluation."""
        return f"{self.metric} {metrics[self.metric]:.4f}"

    # -- checkpoints and results
    def checkpoint_entries(self) -> dict[str, Any]:
        """Extra entries of last.pth and best.pth (what inference or export needs beyond weights and config)."""
        return {}

    def summary(self, history: list[dict[str, Any]], evals: list[dict[str, Any]]) -> dict[str, Any]:
        """Extra entries of the run's summary."""
        return {}

    def write_results(self, output: Path, summary: dict[str, Any]) -> None:
        """Extra result files (rank 0, after the run)."""
