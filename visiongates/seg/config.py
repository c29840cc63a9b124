"""Segmentation run configuration: one dataclass is the schema of tools/train_attention_unet.py's options."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from visiongates.errors import VisionGatesError

__all__ = ["SegConfig", "load_seg_config", "parse_gate"]


def parse_gate(value: str | None) -> str | None:
    """'grid' / 'equal' as given; None, 'none' or 'plain' mean plain U-Net skips (no gate)."""
    if value is None or str(value).lower() in ("none", "plain", "null", ""):
        return None
    if value not in ("grid", "equal"):
        raise VisionGatesError(f"gate must be 'grid', 'equal' or 'none', got {value!r}")
    return value


@dataclass
class SegConfig:
    """Every option of a segmentation run on the coins set (visiongates.data.segmentation_toy)."""

    encoder: str = "attention_unet_encoder"
    encoder_kwargs: dict[str, Any] = field(default_factory=lambda: {"widths": [8, 16, 32, 64, 128]})
    gate: str | None = "grid"
    deep_supervision: bool = True
    output: str = "runs/seg/attention_unet_coins"
    # data
    size: int = 64
    train_length: int = 512  # composites per epoch (new ones every epoch)
    val_length: int = 96
    val_seed: int = 0  # the held-out images are the same for every run seed
    max_coins: int = 3
    distractors: int = 1
    background_dir: str | None = None
    # schedule: timm optimizer, per-step cosine decay after a linear warmup
    steps: int = 300
    batch_size: int = 8
    opt: str = "adamw"
    lr: float = 5e-3
    min_lr: float = 1e-5
    warmup_steps: int = 15
    weight_decay: float = 1e-4
    dice_weight: float = 1.0  # loss = cross-entropy + dice_weight * soft Dice loss
    aux_weight: float = 0.5  # the same loss on each deep-supervision level, averaged (the official code: 0)
    eval_every: int = 0  # 0: evaluate at the end only
    # machinery
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.gate = parse_gate(self.gate)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_seg_config(**overrides: Any) -> SegConfig:
    """Dataclass defaults <- keyword overrides (None values are ignored, except `gate`); unknown keys are errors."""
    known = {f.name for f in dataclasses.fields(SegConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise VisionGatesError(f"unknown segmentation option(s) {unknown}")
    return SegConfig(**{k: v for k, v in overrides.items() if v is not None or k == "gate"})
