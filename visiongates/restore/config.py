"""Restoration run configuration: one dataclass is the schema of configs/restore/*.yaml and tools/train_restore.py."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visiongates.engine.config import read_yaml
from visiongates.errors import VisionGatesError

__all__ = ["RestoreConfig", "load_restore_config"]


@dataclass
class RestoreConfig:
    """Every option of a restoration run. Relative paths are taken from the working directory (the repo root)."""

    model: str = "maxim_s1"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"zero_init_last": True})
    output: str = "runs/restore/maxim_s1_denoise_sigma25"
    init: str | None = None  # weights to start from / evaluate: our .pth checkpoint or an official Flax .npz
    # data: `paired` folders hold input/ and target/; otherwise clean images are degraded by `degradations`
    train_dir: str | None = None
    val_dir: str | None = None
    paired: bool = False
    degradations: list[dict[str, Any]] = field(default_factory=lambda: [{"type": "gaussian_noise", "sigma": 25}])
    crop_size: int = 64
    eval_crop_size: int | None = 128  # None: whole images (padded inside the model), batch size 1
    max_train_images: int | None = None
    max_eval_images: int | None = 32
    # schedule (Adam + cosine decay to min_lr as in the MAXIM paper, after an optional warmup)
    steps: int = 300
    batch_size: int = 8
    lr: float = 2e-4
    min_lr: float = 1e-6
    warmup_steps: int = 0  # linear warmup from lr / 100 (the official init feeds the heads features of std ~15)
    weight_decay: float = 0.0
    clip_grad: float | None = None
    charbonnier_eps: float = 1e-3
    freq_weight: float = 0.1
    eval_every: int = 0  # 0: evaluate at the end only
    num_samples: int = 4  # side-by-side PNGs (input | output | target) written per evaluation
    # machinery
    device: str = "cpu"
    threads: int | None = None  # torch intra-op threads (1 is fastest on small shared CPUs)
    workers: int = 0
    seed: int = 0
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_restore_config(path: str | Path | None = None, **overrides: Any) -> RestoreConfig:
    """Dataclass defaults <- YAML file <- keyword overrides (None values are ignored); unknown keys are errors."""
    known = {f.name for f in dataclasses.fields(RestoreConfig)}
    values: dict[str, Any] = {}
    if path is not None:
        values.update(read_yaml(path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - known)
    if unknown:
        raise VisionGatesError(f"unknown restoration option(s) {unknown}")
    return RestoreConfig(**values)
