"""The Attention U-Net segmentation task on the one engine: the coins-on-photos set
(visiongates.data.segmentation_toy), cross-entropy + soft Dice with deep supervision, Dice / pooled Dice / pixel
accuracy on held-out images, and `compare_gates`: gated against plain skips over seeds (a Markdown table).

Checkpoints hold the config (with `encoder`), so `load_trained` and export rebuild the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from timm.utils import unwrap_model
from torch import nn
from torch.utils.data import Dataset

from visiongates.data.segmentation_toy import CoinSegmentationDataset
from visiongates.engine.checkpoint import load_checkpoint, load_model_weights, model_state_from
from visiongates.engine.config import TrainConfig, load_config
from visiongates.engine.task import Task
from visiongates.engine.trainer import run
from visiongates.errors import VisionGatesError
from visiongates.models.attention_unet import AttentionUNet, create_attention_unet

__all__ = [
    "Normalize",
    "SegmentationLoss",
    "SegmentationTask",
    "build_datasets",
    "build_model",
    "compare_gates",
    "dice_per_image",
    "evaluate",
    "format_comparison",
    "load_trained",
    "soft_dice_loss",
    "train",
]


# ------------------------------------------------------------------------------------------------ loss and metric
def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean over images and foreground classes of 2|P.G| / (|P| + |G|), P the softmax probabilities
    (Milletari et al., V-Net, 3DV 2016, Eq. 1)."""
    probs = logits.float().softmax(dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum((2, 3))
    denom = probs.sum((2, 3)) + onehot.sum((2, 3))
    return 1.0 - ((2 * inter + eps) / (denom + eps)).mean()


class SegmentationLoss(nn.Module):
    """CE + dice_weight * soft Dice on the prediction, plus aux_weight * the same on each deep-supervision level."""

    def __init__(self, dice_weight: float = 1.0, aux_weight: float = 0.0) -> None:
        super().__init__()
        self.dice_weight, self.aux_weight = dice_weight, aux_weight

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target) + self.dice_weight * soft_dice_loss(logits, target)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, aux: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        loss = self.single(logits, target)
        if aux and self.aux_weight:
            loss = loss + self.aux_weight * sum(self.single(a, target) for a in aux) / len(aux)
        return loss


def dice_per_image(pred: torch.Tensor, target: torch.Tensor, label: int = 1) -> torch.Tensor:
    """2|P & G| / (|P| + |G|) of class `label` per image [B]; 1 where both are empty (Dice 1945)."""
    p, g = (pred == label).flatten(1), (target == label).flatten(1)
    inter = (p & g).sum(1).double()
    total = (p.sum(1) + g.sum(1)).double()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))


# ------------------------------------------------------------------------------------------------ model and data
class Normalize(nn.Module):
    """(x - mean) / std with the encoder's pretrained-cfg statistics (images in [0, 1])."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_model(cfg: TrainConfig) -> tuple[AttentionUNet, Normalize]:
    """The Attention U-Net of `cfg` (gate None: plain skips) and the input normalisation its encoder expects."""
    model = create_attention_unet(
        cfg.encoder,
        num_classes=2,
        gate=cfg.gate,
        deep_supervision=cfg.deep_supervision,
        encoder_kwargs=cfg.encoder_kwargs,
    )
    data_cfg = timm.data.resolve_data_config({}, model=model.encoder)
    return model, Normalize(data_cfg["mean"], data_cfg["std"])


def build_datasets(cfg: TrainConfig) -> tuple[CoinSegmentationDataset, CoinSegmentationDataset]:
    """Training composites (seeded by the run's seed) and the fixed held-out images (seeded by val_seed)."""
    common = dict(
        size=cfg.size, max_coins=cfg.max_coins, distractors=cfg.distractors, background_dir=cfg.background_dir
    )
    return (
        CoinSegmentationDataset("train", length=cfg.train_length, seed=cfg.seed, **common),
        CoinSegmentationDataset("val", length=cfg.val_length, seed=cfg.val_seed, **common),
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, normalize: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Mean per-image Dice of the coin class, pooled Dice over all pixels, and pixel accuracy."""
    was_training = model.training
    model.eval()
    dices, inter, total, correct, pixels = [], 0, 0, 0, 0
    for batch in loader:
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        pred = model(normalize(image)).argmax(dim=1)
        dices.append(dice_per_image(pred, mask).cpu())
        inter += int(((pred == 1) & (mask == 1)).sum())
        total += int((pred == 1).sum() + (mask == 1).sum())
        correct += int((pred == mask).sum())
        pixels += mask.numel()
    model.train(was_training)
    per_image = torch.cat(dices)
    return {
        "dice": float(per_image.mean()),
        "dice_pooled": 2 * inter / max(total, 1),
        "pixel_accuracy": correct / max(pixels, 1),
        "images": len(per_image),
    }


def load_trained(path: str | Path, device: str = "cpu") -> tuple[AttentionUNet, Normalize, TrainConfig]:
    """Rebuild the model of a checkpoint of this task and load its weights (weights_only)."""
    state = load_checkpoint(path)
    if "encoder" not in (state.get("config") or {}) or "model" not in state:
        raise VisionGatesError(f"'{path}' is not a checkpoint of the segmentation task (tools/train.py)")
    cfg = load_config(**{**state["config"], "task": "segmentation"})
    model, normalize = build_model(cfg)
    load_model_weights(model, state["model"], source=f"checkpoint '{path}'")
    return model.to(device).eval(), normalize.to(device), cfg


# ---------------------------------------------------------------------------------------------------------- task
class SegmentationTask(Task):
    """Attention U-Net (or plain-skip U-Net) segmentation of coins; best.pth is chosen on held-out Dice."""

    name = "segmentation"
    metric = "dice"
    mode = "max"
    resume_keys = ("size", "train_length", "max_coins", "distractors", "background_dir")
    supports_ddp = False  # the loss needs the deep-supervision outputs of forward_all, which DDP does not wrap

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        if cfg.model != "attention_unet":
            raise VisionGatesError(
                f"the segmentation task trains model 'attention_unet' (its encoder is the 'encoder' option), "
                f"not '{cfg.model}'"
            )
        self.params = 0

    def build_datasets(self, need_train: bool = True) -> tuple[Dataset | None, Dataset]:
        return build_datasets(self.cfg)

    def val_batch_size(self) -> int:
        return 16

    def build_model(self, train_ds: Dataset | None) -> nn.Module:
        model, normalize = build_model(self.cfg)
        if self.cfg.pretrained:
            state = model_state_from(load_checkpoint(self.cfg.pretrained))
            load_model_weights(model, state, source=f"pretrained checkpoint '{self.cfg.pretrained}'")
        self.normalize = normalize.to(self.device)
        self.criterion = SegmentationLoss(self.cfg.dice_weight, self.cfg.aux_weight)
        self.params = sum(p.numel() for p in model.parameters())
        return model.to(self.device)

    def batch_size_of(self, batch: Any) -> tuple[int, int]:
        return len(batch["image"]), 0

    def training_loss(self, model: nn.Module, batch: Any, extra: dict[str, float]) -> torch.Tensor:
        image, mask = batch["image"].to(self.device), batch["mask"].to(self.device)
        with self.autocast():
            out = unwrap_model(model).forward_all(self.normalize(image))
        return self.criterion(out.logits, mask, out.aux_logits)

    def evaluate(self, model: nn.Module, loader: Any, step: int, output: Path | None) -> dict[str, Any]:
        return evaluate(model, self.normalize, loader, self.device)

    def describe(self, metrics: dict[str, Any]) -> str:
        return f"gate={self.cfg.gate} held-out Dice {metrics['dice']:.4f} (pooled {metrics['dice_pooled']:.4f})"

    def summary(self, history: list[dict[str, Any]], evals: list[dict[str, Any]]) -> dict[str, Any]:
        final = {k: v for k, v in evals[-1].items() if k not in ("step", "epoch")} if evals else {}
        return {**final, "params": self.params, "train_loss": history[-1]["train_loss"] if history else None}

    def write_results(self, output: Path, summary: dict[str, Any]) -> None:
        metrics = {"config": self.cfg.to_dict(), **{k: v for k, v in summary.items() if k != "rank_checksums"}}
        (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------- comparison
def train(cfg: TrainConfig) -> dict[str, Any]:
    """One segmentation run on the engine; returns its summary (dice, dice_pooled, pixel_accuracy, params ...)."""
    return run(SegmentationTask(cfg))


def compare_gates(cfg: TrainConfig, seeds: list[int], gates: list[str | None]) -> dict[str, Any]:
    """Train every (gate, seed) pair with otherwise identical settings; per-gate held-out Dice mean and std,
    written as comparison.json and a Markdown table beside it."""
    rows: dict[str, Any] = {}
    for gate in gates:
        runs = []
        for seed in seeds:
            output = str(Path(cfg.output) / f"{gate or 'none'}_seed{seed}")
            run_cfg = load_config(
                **{**cfg.to_dict(), "gate": gate, "seed": seed, "compare_gates": None, "output": output}
            )
            result = train(run_cfg)
            runs.append({k: result[k] for k in ("dice", "dice_pooled", "train_seconds", "params")} | {"seed": seed})
        dice = np.array([r["dice"] for r in runs])
        rows[gate or "none"] = {
            "runs": runs,
            "dice_mean": float(dice.mean()),
            "dice_std": float(dice.std(ddof=1)) if len(dice) > 1 else 0.0,
            "params": runs[0]["params"],
        }
    summary = {"config": cfg.to_dict(), "seeds": seeds, "results": rows, "table": format_comparison(rows)}
    Path(cfg.output).mkdir(parents=True, exist_ok=True)
    (Path(cfg.output) / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n")
    (Path(cfg.output) / "comparison.md").write_text(summary["table"] + "\n")
    return summary


GATE_NAMES = {
    "grid": "Attention U-Net (grid gates)",
    "equal": "Attention U-Net (equal-resolution gates)",
    "none": "U-Net (plain skips)",
}


def format_comparison(rows: dict[str, Any]) -> str:
    """Markdown table: skips, parameters, held-out Dice mean +- std (sample std over seeds), per-seed Dice."""
    lines = ["| skips | params | held-out Dice, mean ± std | per seed |", "|---|---|---|---|"]
    for gate, row in rows.items():
        per_seed = ", ".join(f"{r['dice']:.4f}" for r in row["runs"])
        lines.append(
            f"| {GATE_NAMES.get(gate, gate)} | {row['params'] / 1e6:.3f}M "
            f"| {row['dice_mean']:.4f} ± {row['dice_std']:.4f} | {per_seed} |"
        )
    return "\n".join(lines)
