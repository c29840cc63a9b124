"""The tasks that run on the one training engine (visiongates.engine): classification, restoration and Attention
U-Net segmentation. `train(cfg)` picks the task that `cfg.task` names; tools/train.py is its command line.
"""

from __future__ import annotations

from typing import Any

from visiongates.engine.config import TrainConfig, build_parser, load_config, parse_gate  # noqa: F401
from visiongates.engine.task import Task
from visiongates.engine.trainer import evaluate_only, run

from .classification import ClassificationTask
from .restoration import RestorationTask
from .segmentation import SegmentationTask, compare_gates

TASKS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "restoration": RestorationTask,
    "segmentation": SegmentationTask,
}


def build_task(cfg: TrainConfig) -> Task:
    """The Task object for `cfg.task`."""
    return TASKS[cfg.task](cfg)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train `cfg` on the one engine (see visiongates.engine.trainer.run); returns the run's summary."""
    return run(build_task(cfg))


def evaluate(cfg: TrainConfig) -> dict[str, Any]:
    """Evaluate `cfg.pretrained` (or a fresh model) on the task's validation set, without training."""
    return evaluate_only(build_task(cfg))


def main(cfg: TrainConfig) -> dict[str, Any]:
    """What tools/train.py runs: --eval-only, a segmentation gate comparison (compare_gates), or training."""
    if cfg.eval_only:
        return {"rank": 0, **evaluate(cfg)}
    if cfg.task == "segmentation" and cfg.compare_gates:
        gates = [parse_gate(g) for g in cfg.compare_gates]
        return {"rank": 0, **compare_gates(cfg, list(cfg.compare_seeds), gates)}
    return train(cfg)


__all__ = ["TASKS", "Task", "build_task", "evaluate", "load_config", "main", "train"]
