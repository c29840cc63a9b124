"""The classification task on the one engine: the embedded digits or an ImageFolder, timm models (MSViT's gate
loss included), Mixup / CutMix, label smoothing, top-1 / top-5 evaluation; checkpoints record classes and the
preprocessing (data_config) that evaluation, export and --pretrained read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.utils import unwrap_model
from torch import nn
from torch.utils.data import Dataset

from visiongates.data import build_dataset, class_folders, collate_skip, eval_transform, train_transform
from visiongates.engine.checkpoint import load_checkpoint, load_model_weights, model_state_from
from visiongates.engine.config import TrainConfig, model_kwargs
from visiongates.engine.evaluate import evaluate, gate_mask
from visiongates.engine.task import Task
from visiongates.errors import UnknownClassesError, VisionGatesError
from visiongates.models import check_model_name

__all__ = ["ClassificationTask", "auxiliary_loss", "build_datasets", "build_model"]


def build_datasets(
    cfg: TrainConfig, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None
) -> tuple[Dataset, Dataset]:
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
        check_split_folders(Path(cfg.data))
    train_ds = build_dataset(cfg.data, "train", train_tf, seed=cfg.seed, max_pixels=cfg.max_pixels)
    val_ds = build_dataset(cfg.data, "val", val_tf, classes=train_ds.classes, seed=cfg.seed, max_pixels=cfg.max_pixels)
    return train_ds, val_ds


def check_split_folders(root: Path) -> None:
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


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device) -> nn.Module:
    """timm.create_model for `cfg` with `num_classes`; `cfg.pretrained` weights (a fresh head if classes differ)."""
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


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    """The model's own extra loss for its last forward (e.g. MSViT's batch shaping), if it defines one."""
    hook = getattr(unwrap_model(model), "auxiliary_loss", None)
    return hook() if callable(hook) else None


class ClassificationTask(Task):
    """Image classification; best.pth is chosen on validation top-1."""

    name = "classification"
    metric = "top1"
    mode = "max"
    resume_keys = ("data",)

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.classes: list[str] = []
        self.data_config: dict[str, Any] = {}
        self.mixup: Mixup | None = None
        self.loss_fn: nn.Module = nn.CrossEntropyLoss()

    def build_datasets(self, need_train: bool = True) -> tuple[Dataset | None, Dataset]:
        return build_datasets(self.cfg)

    def collate_fn(self) -> Any:
        return collate_skip

    def build_model(self, train_ds: Dataset | None) -> nn.Module:
        cfg = self.cfg
        if train_ds is None:
            raise VisionGatesError("classification evaluates with tools/eval.py CHECKPOINT, not --eval-only")
        self.classes = list(train_ds.classes)
        model = build_model(cfg, len(self.classes), self.device)
        self.data_config = timm.data.resolve_data_config({}, model=model)
        self.data_config.update(input_size=(3, cfg.img_size, cfg.img_size), crop_pct=cfg.crop_pct)
        if cfg.mixup > 0 or cfg.cutmix > 0:
            self.mixup = Mixup(
                mixup_alpha=cfg.mixup,
                cutmix_alpha=cfg.cutmix,
                prob=cfg.mixup_prob,
                label_smoothing=cfg.smoothing,
                num_classes=len(self.classes),
            )
            self.loss_fn = SoftTargetCrossEntropy()
        elif cfg.smoothing > 0:
            self.loss_fn = LabelSmoothingCrossEntropy(cfg.smoothing)
        return model

    def batch_size_of(self, batch: Any) -> tuple[int, int]:
        _, labels, skipped = batch
        return len(labels), skipped

    def training_loss(self, model: nn.Module, batch: Any, extra: dict[str, float]) -> torch.Tensor:
        images, labels, _ = batch
        images, targets = images.to(self.device), labels.to(self.device)
        if self.mixup is not None:
            images, targets = self.mixup(images, targets)
        with self.autocast():
            logits = model(images)
        loss = self.loss_fn(logits.float(), targets)
        aux = auxiliary_loss(model)
        if aux is not None:
            loss = loss + aux
        mask = gate_mask(model)
        if mask is not None:
            extra["fine_regions"] = extra.get("fine_regions", 0.0) + float(mask.detach().sum())
            extra["regions"] = extra.get("regions", 0) + mask.numel()
        return loss

    def train_stats(self, extra: dict[str, float]) -> dict[str, float]:
        if extra.get("regions"):  # this rank's share (training samples the gate)
            return {"train_fine_share": extra["fine_regions"] / extra["regions"]}
        return {}

    def evaluate(self, model: nn.Module, loader: Any, step: int, output: Path | None) -> dict[str, Any]:
        meter, skipped = evaluate(model, loader, len(self.classes), self.device, self.cfg.amp)
        return {**meter.summary(), "skipped": skipped}

    def describe(self, metrics: dict[str, Any]) -> str:
        share = f", fine share {metrics['fine_share']:.3f}" if "fine_share" in metrics else ""
        return f"loss {metrics['loss']:.4f}, top-1 {metrics['top1']:.2f}%{share}"

    def checkpoint_entries(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "num_classes": len(self.classes), "data_config": self.data_config}
