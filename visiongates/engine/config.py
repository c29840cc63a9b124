"""Training configuration: one dataclass is the schema for YAML files in configs/cls/ and for CLI flags."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from visiongates.errors import VisionGatesError


@dataclass
class TrainConfig:
    """Every option of tools/train.py. Defaults train the embedded digits set with a CBAM-ResNet-18."""

    # what to train on what
    model: str = "cbam_resnet18"
    data: str = "digits"  # 'digits' (embedded, no download) or a folder with train/ and val/ in ImageFolder layout
    output: str = "runs/digits_cbam_resnet18"
    pretrained: str | None = None  # local checkpoint to start from (classifier re-initialised if classes differ)
    resume: str | None = None  # 'auto' (output/last.pth) or a checkpoint path: continue that run exactly
    # schedule
    epochs: int = 6
    stop_after: int | None = None  # stop after this many epochs in this invocation (resume later with --resume)
    batch_size: int = 64
    accum_steps: int = 1
    max_steps_per_epoch: int | None = None
    # optimiser and scheduler (timm factories)
    opt: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    clip_grad: float | None = None
    clip_mode: str = "norm"
    sched: str = "cosine"
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    min_lr: float = 1e-5
    # regularisation
    smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    drop: float = 0.0
    drop_path: float = 0.0
    ema: bool = False
    ema_decay: float = 0.998
    # gated models: passed to the model only when gate_target is set (MSViT: visiongates.models.msvit)
    gate_target: float | None = None  # share of regions kept fine, set by the batch-shaping loss; 1.0 = all fine
    gate_loss_weight: float = 1.0  # weight of the model's auxiliary_loss() (generalized batch shaping)
    # images and augmentation (albumentations)
    img_size: int = 224
    crop_pct: float = 0.875
    scale_min: float = 0.08
    hflip: float = 0.5
    rotate: float = 0.0
    color_jitter: float = 0.0
    max_pixels: int | None = None  # images larger than this are skipped and counted (default: PIL's bomb limit)
    # machinery
    amp: str = "none"  # none | bf16 | fp16 (fp16 on CUDA only)
    on_nonfinite: str = "stop"  # a NaN/inf loss: 'stop' (one line, last.pth kept) or 'skip' the step and count it
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    deterministic: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        validate_config(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# (low, high, low inclusive, high inclusive) per numeric option; None: unbounded on that side
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "epochs": (1, None, True, False),
    "stop_after": (1, None, True, False),
    "batch_size": (1, None, True, False),
    "accum_steps": (1, None, True, False),
    "max_steps_per_epoch": (1, None, True, False),
    "lr": (0, None, False, False),
    "weight_decay": (0, None, True, False),
    "momentum": (0, 1, True, True),
    "clip_grad": (0, None, False, False),
    "warmup_epochs": (0, None, True, False),
    "warmup_lr": (0, None, True, False),
    "min_lr": (0, None, True, False),
    "smoothing": (0, 1, True, False),
    "mixup": (0, None, True, False),
    "cutmix": (0, None, True, False),
    "mixup_prob": (0, 1, True, True),
    "drop": (0, 1, True, False),
    "drop_path": (0, 1, True, False),
    "ema_decay": (0, 1, False, False),
    "gate_target": (0, 1, False, True),
    "gate_loss_weight": (0, None, True, False),
    "img_size": (1, None, True, False),
    "crop_pct": (0, 1, False, True),
    "scale_min": (0, 1, False, True),
    "hflip": (0, 1, True, True),
    "rotate": (0, 180, True, True),
    "color_jitter": (0, None, True, False),
    "workers": (0, None, True, False),
    "max_pixels": (0, None, True, False),
}
KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
CHOICES: dict[str, tuple[str, ...]] = {
    "amp": ("none", "bf16", "fp16"),
    "clip_mode": ("norm", "value", "agc"),
    "on_nonfinite": ("stop", "skip"),
}


def _describe(low, high, low_incl, high_incl) -> str:
    if high is None:
        return f"{'>=' if low_incl else '>'} {low:g}"
    return f"in {'[' if low_incl else '('}{low:g}, {high:g}{']' if high_incl else ')'}"


def validate_config(cfg: TrainConfig) -> None:
    """Types, ranges and choices of every option; the first problem raises one line naming option and value."""
    for f in dataclasses.fields(cfg):
        value, kind = getattr(cfg, f.name), _base_type(f.name)
        if value is None:
            if f.default is not None:
                raise VisionGatesError(f"option {f.name} needs a value ({KIND_NAMES[kind]}), not none")
            continue
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
            setattr(cfg, f.name, float(value))
        if not ok:
            raise VisionGatesError(f"option {f.name} must be {KIND_NAMES[kind]}, got {value!r}")
        if f.name in RANGES:
            low, high, low_incl, high_incl = RANGES[f.name]
            inside = (value >= low if low_incl else value > low) and (
                high is None or (value <= high if high_incl else value < high)
            )
            if not inside:
                raise VisionGatesError(
                    f"option {f.name} must be {_describe(low, high, low_incl, high_incl)}, got {value!r}"
                )
        if f.name in CHOICES and value not in CHOICES[f.name]:
            raise VisionGatesError(f"option {f.name} must be one of {', '.join(CHOICES[f.name])}, got {value!r}")


def model_kwargs(config: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments that the options imply beyond the defaults (a checkpoint's saved config works too).

    With gate_target set (MSViT) the model is also built for img_size: its batch-shaping priors, one per coarse
    region, are laid out on that grid.
    """
    values = config.to_dict() if isinstance(config, TrainConfig) else config
    if values.get("gate_target") is None:
        return {}
    return {
        "gate_target": values["gate_target"],
        "gate_loss_weight": values.get("gate_loss_weight", 1.0),
        "img_size": values.get("img_size", 224),
    }


def _base_type(annotation: Any) -> type:
    """`int | None` -> int, `str` -> str (annotations are strings under `from __future__ import annotations`)."""
    hint = typing.get_type_hints(TrainConfig)[annotation] if isinstance(annotation, str) else annotation
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got '{text}'")


def _parse_optional(kind: type):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """Argument parser with one flag per TrainConfig field (defaults come from --config, then the dataclass)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file of TrainConfig fields (configs/cls/*.yaml); flags override it")
    for f in dataclasses.fields(TrainConfig):
        kind = _base_type(f.name)
        parse = _parse_bool if kind is bool else _parse_optional(kind)
        flag = f"--{f.name.replace('_', '-')}"
        parser.add_argument(flag, dest=f.name, type=parse, default=None, help=f"(default {f.default})")
    return parser


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The option: value mapping of the YAML config file `path`; a VisionGatesError names the file when it is
    missing, unreadable or not a mapping, and the line and column of a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise VisionGatesError(f"config file '{path}' does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise VisionGatesError(f"config file '{path}' is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VisionGatesError(f"config file '{path}' cannot be read ({exc})") from None
    if not isinstance(loaded, dict):
        raise VisionGatesError(f"config file '{path}' must hold a mapping of option: value")
    return loaded


def load_config(
    args: argparse.Namespace | None = None, config_file: str | Path | None = None, **overrides: Any
) -> TrainConfig:
    """Dataclass defaults <- YAML file <- explicit CLI flags / keyword overrides; unknown keys are errors."""
    values: dict[str, Any] = {}
    config_file = config_file or (getattr(args, "config", None) if args is not None else None)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    if config_file:
        path = Path(config_file)
        loaded = read_yaml(path)
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise VisionGatesError(f"config file '{path}' has unknown option(s) {unknown}")
        values.update(loaded)
    if args is not None:
        values.update({k: v for k, v in vars(args).items() if k in known and v is not None})
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise VisionGatesError(f"unknown training option(s) {unknown}")
    values.update(overrides)
    return TrainConfig(**values)


__all__ = ["TrainConfig", "build_parser", "load_config", "model_kwargs", "read_yaml", "validate_config"]
