"""The one training configuration: a dataclass of common options plus one section per task is the schema of every
tools/train.py YAML file (configs/cls/, configs/restore/, configs/attention_unet/) and of its flags; one loader
(`load_config`: defaults <- task defaults <- YAML <- flags), one validation, one `to_dict`."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from visiongates.errors import VisionGatesError

COMMON, CLASSIFICATION, RESTORATION, SEGMENTATION = "common", "classification", "restoration", "segmentation"
TASK_NAMES = (CLASSIFICATION, RESTORATION, SEGMENTATION)


def _opt(default: Any, section: str = COMMON) -> Any:
    """A config field of `section` (common, or the one task that reads it)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"section": section})
    return field(default=default, metadata={"section": section})


@dataclass
class TrainConfig:
    """Every option of tools/train.py: the common options, then one section per task (only the selected task's
    section may differ from its defaults). Defaults train the embedded digits set with a CBAM-ResNet-18; the other
    tasks' defaults for the common options come from TASK_DEFAULTS (applied by `load_config`)."""

    # what to train on what
    task: str = _opt(CLASSIFICATION)  # classification | restoration | segmentation
    model: str = _opt("cbam_resnet18")  # a timm / visiongates model name ('attention_unet' for segmentation)
    model_kwargs: dict[str, Any] = _opt({})  # extra timm.create_model arguments
    output: str = _opt("runs/digits_cbam_resnet18")
    pretrained: str | None = _opt(None)  # local checkpoint to start from (restoration: also an official Flax .npz)
    resume: str | None = _opt(None)  # 'auto' (output/last.pth) or a checkpoint path: continue that run exactly
    eval_only: bool = _opt(False)  # evaluate the (pretrained) model on the validation set, no training
    # schedule: `epochs` passes over the training set, or, with `steps` set, that many optimizer updates
    epochs: int = _opt(6)
    steps: int | None = _opt(None)  # a step budget: ceil(steps / updates per epoch) epochs, the last one cut short
    stop_after: int | None = _opt(None)  # stop after this many epochs in this invocation (resume later with --resume)
    batch_size: int = _opt(64)
    accum_steps: int = _opt(1)
    max_steps_per_epoch: int | None = _opt(None)
    eval_every: int = _opt(1)  # validate every n epochs (0: after the last epoch only); the last epoch always
    # optimiser and scheduler (timm factories; per-update LR)
    opt: str = _opt("adamw")
    lr: float = _opt(2e-3)
    weight_decay: float = _opt(0.05)
    momentum: float = _opt(0.9)
    clip_grad: float | None = _opt(None)
    clip_mode: str = _opt("norm")
    sched: str = _opt("cosine")  # with `steps`: cosine per update (timm CosineLRScheduler)
    warmup_epochs: int = _opt(1)
    warmup_steps: int = _opt(0)  # with `steps`: linear warmup over this many updates
    warmup_lr: float | None = _opt(1e-5)  # None: lr / 100
    min_lr: float = _opt(1e-5)
    ema: bool = _opt(False)
    ema_decay: float = _opt(0.998)
    # machinery
    amp: str = _opt("none")  # none | bf16 | fp16 (fp16 on CUDA only)
    on_nonfinite: str = _opt("stop")  # a NaN/inf loss: 'stop' (one line, last.pth kept) or 'skip' the step
    device: str = _opt("auto")
    threads: int | None = _opt(None)  # torch intra-op threads (1 is fastest on small shared CPUs)
    workers: int = _opt(2)
    seed: int = _opt(0)
    deterministic: bool = _opt(False)
    progress: bool = _opt(True)

    # --- classification (visiongates.tasks.classification) ---
    data: str = _opt("digits", CLASSIFICATION)  # 'digits' (embedded) or a folder with train/ and val/ (ImageFolder)
    smoothing: float = _opt(0.1, CLASSIFICATION)
    mixup: float = _opt(0.0, CLASSIFICATION)
    cutmix: float = _opt(0.0, CLASSIFICATION)
    mixup_prob: float = _opt(1.0, CLASSIFICATION)
    drop: float = _opt(0.0, CLASSIFICATION)
    drop_path: float = _opt(0.0, CLASSIFICATION)
    # gated models: passed to the model only when gate_target is set (MSViT: visiongates.models.msvit)
    gate_target: float | None = _opt(None, CLASSIFICATION)  # share of regions kept fine (batch-shaping loss)
    gate_loss_weight: float = _opt(1.0, CLASSIFICATION)  # weight of the model's auxiliary_loss()
    img_size: int = _opt(224, CLASSIFICATION)
    crop_pct: float = _opt(0.875, CLASSIFICATION)
    scale_min: float = _opt(0.08, CLASSIFICATION)
    hflip: float = _opt(0.5, CLASSIFICATION)
    rotate: float = _opt(0.0, CLASSIFICATION)
    color_jitter: float = _opt(0.0, CLASSIFICATION)
    max_pixels: int | None = _opt(None, CLASSIFICATION)  # larger images are skipped and counted

    # --- restoration (visiongates.tasks.restoration; MAXIM) ---
    # data: `paired` folders hold input/ and target/; otherwise clean images are degraded by `degradations`
    train_dir: str | None = _opt(None, RESTORATION)
    val_dir: str | None = _opt(None, RESTORATION)
    paired: bool = _opt(False, RESTORATION)
    degradations: list[dict[str, Any]] = _opt([{"type": "gaussian_noise", "sigma": 25}], RESTORATION)
    crop_size: int = _opt(64, RESTORATION)
    eval_crop_size: int | None = _opt(128, RESTORATION)  # None: whole images (padded inside the model), batch 1
    max_train_images: int | None = _opt(None, RESTORATION)
    max_eval_images: int | None = _opt(32, RESTORATION)
    charbonnier_eps: float = _opt(1e-3, RESTORATION)
    freq_weight: float = _opt(0.1, RESTORATION)
    num_samples: int = _opt(4, RESTORATION)  # side-by-side PNGs (input | output | target) written per evaluation

    # --- segmentation (visiongates.tasks.segmentation; Attention U-Net on the coins set) ---
    encoder: str = _opt("attention_unet_encoder", SEGMENTATION)
    encoder_kwargs: dict[str, Any] = _opt({"widths": [8, 16, 32, 64, 128]}, SEGMENTATION)
    gate: str | None = _opt("grid", SEGMENTATION)  # grid | equal | none (plain U-Net skips)
    deep_supervision: bool = _opt(True, SEGMENTATION)
    size: int = _opt(64, SEGMENTATION)
    train_length: int = _opt(512, SEGMENTATION)  # composites per epoch (new ones every epoch)
    val_length: int = _opt(96, SEGMENTATION)
    val_seed: int = _opt(0, SEGMENTATION)  # the held-out images are the same for every run seed
    max_coins: int = _opt(3, SEGMENTATION)
    distractors: int = _opt(1, SEGMENTATION)
    background_dir: str | None = _opt(None, SEGMENTATION)
    dice_weight: float = _opt(1.0, SEGMENTATION)  # loss = cross-entropy + dice_weight * soft Dice loss
    aux_weight: float = _opt(0.5, SEGMENTATION)  # the same loss on each deep-supervision level, averaged
    compare_gates: list[str] | None = _opt(None, SEGMENTATION)  # train each of these gates over compare_seeds
    compare_seeds: list[int] = _opt([0, 1, 2], SEGMENTATION)

    def __post_init__(self) -> None:
        if self.task == SEGMENTATION:
            self.gate = parse_gate(self.gate)
        validate_config(self)

    def to_dict(self) -> dict[str, Any]:
        """The common options and the selected task's section (what checkpoints record as 'config')."""
        return {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.metadata["section"] in (COMMON, self.task)
        }


# The common options whose default depends on the task (applied by load_config before the YAML file and flags).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    CLASSIFICATION: {},
    RESTORATION: {
        "model": "maxim_s1",
        "model_kwargs": {"zero_init_last": True},
        "output": "runs/restore/maxim_s1_denoise_sigma25",
        "steps": 300,
        "batch_size": 8,
        "eval_every": 0,
        "opt": "adam",  # Adam + cosine decay to min_lr as in the MAXIM paper, after an optional warmup
        "lr": 2e-4,
        "min_lr": 1e-6,
        "weight_decay": 0.0,
        "warmup_lr": None,
        "workers": 0,
    },
    SEGMENTATION: {
        "model": "attention_unet",
        "output": "runs/attention_unet/coins",
        "steps": 300,
        "batch_size": 8,
        "eval_every": 0,
        "lr": 5e-3,
        "min_lr": 1e-5,
        "warmup_steps": 15,
        "weight_decay": 1e-4,
        "warmup_lr": None,
        "workers": 0,
    },
}


def parse_gate(value: str | None) -> str | None:
    """'grid' / 'equal' as given; None, 'none' or 'plain' mean plain U-Net skips (no gate)."""
    if value is None or str(value).lower() in ("none", "plain", "null", ""):
        return None
    if value not in ("grid", "equal"):
        raise VisionGatesError(f"gate must be 'grid', 'equal' or 'none', got {value!r}")
    return value


# (low, high, low inclusive, high inclusive) per numeric option; None: unbounded on that side
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "epochs": (1, None, True, False),
    "steps": (1, None, True, False),
    "eval_every": (0, None, True, False),
    "warmup_steps": (0, None, True, False),
    "threads": (1, None, True, False),
    "crop_size": (1, None, True, False),
    "eval_crop_size": (1, None, True, False),
    "max_train_images": (1, None, True, False),
    "max_eval_images": (1, None, True, False),
    "charbonnier_eps": (0, None, False, False),
    "freq_weight": (0, None, True, False),
    "num_samples": (0, None, True, False),
    "size": (8, None, True, False),
    "train_length": (1, None, True, False),
    "val_length": (1, None, True, False),
    "max_coins": (0, None, True, False),
    "distractors": (0, None, True, False),
    "dice_weight": (0, None, True, False),
    "aux_weight": (0, None, True, False),
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
KIND_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "amp": ("none", "bf16", "fp16"),
    "clip_mode": ("norm", "value", "agc"),
    "on_nonfinite": ("stop", "skip"),
    "task": TASK_NAMES,
}


def _describe(low, high, low_incl, high_incl) -> str:
    if high is None:
        return f"{'>=' if low_incl else '>'} {low:g}"
    return f"in {'[' if low_incl else '('}{low:g}, {high:g}{']' if high_incl else ')'}"


def validate_config(cfg: TrainConfig) -> None:
    """Types, ranges and choices of every option, and no option of another task's section changed; the first
    problem raises one line naming option and value."""
    if cfg.task not in TASK_NAMES:
        raise VisionGatesError(f"option task must be one of {', '.join(TASK_NAMES)}, got {cfg.task!r}")
    for f in dataclasses.fields(cfg):
        value, kind = getattr(cfg, f.name), _base_type(f.name)
        section = f.metadata["section"]
        if section not in (COMMON, cfg.task):
            if value != _default(f):
                raise VisionGatesError(f"option {f.name} belongs to task {section}, not {cfg.task}")
            continue
        if value is None:
            if not _optional(f.name):
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
    """Constructor arguments that the options imply beyond the defaults (a checkpoint's saved config works too):
    `model_kwargs`, and with gate_target set (MSViT) gate_target, gate_loss_weight and img_size: its batch-shaping
    priors, one per coarse region, are laid out on that grid.
    """
    values = config.to_dict() if isinstance(config, TrainConfig) else config
    kwargs = dict(values.get("model_kwargs") or {})
    if values.get("gate_target") is None:
        return kwargs
    return {
        **kwargs,
        "gate_target": values["gate_target"],
        "gate_loss_weight": values.get("gate_loss_weight", 1.0),
        "img_size": values.get("img_size", 224),
    }


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _base_type(annotation: Any) -> type:
    """`int | None` -> int, `str` -> str (annotations are strings under `from __future__ import annotations`)."""
    hint = _HINTS[annotation] if isinstance(annotation, str) else annotation
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _optional(name: str) -> bool:
    """Whether option `name` may be None (`int | None`)."""
    hint = _HINTS[name]
    return type(None) in typing.get_args(hint)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got '{text}'")


def _parse_structure(kind: type):
    """A JSON list or mapping; a list also as comma-separated words (`grid,none`, `0,1,2`)."""

    def parse(text: str):
        if text.lower() in ("none", "null"):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None if kind is list else text
        if isinstance(value, kind):
            return value
        if kind is list:
            return [int(w) if w.strip().lstrip("-").isdigit() else w.strip() for w in text.split(",")]
        raise argparse.ArgumentTypeError(f"expected a JSON mapping, got '{text}'")

    parse.__name__ = kind.__name__
    return parse


def _parse_optional(kind: type):
    if kind in (list, dict):
        return _parse_structure(kind)

    def parse(text: str):
        return None if text.lower() in ("none", "null") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """Argument parser with one flag per TrainConfig field, grouped by section (defaults come from --config, then
    the task's defaults, then the dataclass)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config", help="YAML file of TrainConfig fields (configs/cls/, configs/restore/ ...); flags override it"
    )
    groups = {name: parser.add_argument_group(f"{name} options") for name in (COMMON, *TASK_NAMES)}
    for f in dataclasses.fields(TrainConfig):
        kind = _base_type(f.name)
        parse = _parse_bool if kind is bool else _parse_optional(kind)
        flag = f"--{f.name.replace('_', '-')}"
        default = _default(f)
        extra = {"nargs": "?", "const": True} if kind is bool else {}  # `--eval-only` alone means true
        groups[f.metadata["section"]].add_argument(
            flag, dest=f.name, type=parse, default=None, help=f"(default {default})".replace("%", "%%"), **extra
        )
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
    """Dataclass defaults <- the task's TASK_DEFAULTS <- YAML file <- explicit CLI flags / keyword overrides
    (the task is the one the flags, else the file, else the dataclass name); unknown keys are errors."""
    values: dict[str, Any] = {}
    config_file = config_file or (getattr(args, "config", None) if args is not None else None)
    known = set(_FIELDS)
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
    task = values.get("task", CLASSIFICATION)
    return TrainConfig(**{**copy.deepcopy(TASK_DEFAULTS.get(task, {})), **values})


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)

__all__ = [
    "TASK_DEFAULTS",
    "TASK_NAMES",
    "TrainConfig",
    "build_parser",
    "load_config",
    "model_kwargs",
    "parse_gate",
    "read_yaml",
    "validate_config",
]
