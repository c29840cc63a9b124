"""Segmentation training and evaluation on the coins set, and the gated-vs-plain comparison over seeds.

Training: a timm optimizer (create_optimizer_v2) with timm's per-step cosine schedule, cross-entropy + soft Dice.
Evaluation: Dice of the argmax prediction per held-out image (mean over images, and pooled over all pixels).
Checkpoints are written atomically and hold the config, so a run can be rebuilt
(tools/analysis/overlay_attention_gates.py).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn
from tqdm import tqdm

from visiongates.data.segmentation_toy import CoinSegmentationDataset
from visiongates.engine.checkpoint import load_checkpoint, save_checkpoint
from visiongates.errors import VisionGatesError
from visiongates.models.attention_unet import AttentionUNet, create_attention_unet

from .config import SegConfig
from .losses import SegmentationLoss
from .metrics import dice_per_image

__all__ = [
    "build_model",
    "build_datasets",
    "evaluate",
    "train",
    "compare_gates",
    "format_comparison",
    "load_trained",
    "Normalize",
]

log = logging.getLogger(__name__)


class Normalize(nn.Module):
    """(x - mean) / std with the encoder's pretrained-cfg statistics (images in [0, 1])."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_model(cfg: SegConfig) -> tuple[AttentionUNet, Normalize]:
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


def build_datasets(cfg: SegConfig) -> tuple[CoinSegmentationDataset, CoinSegmentationDataset]:
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


def _setup(cfg: SegConfig) -> torch.device:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    return torch.device(cfg.device)


def train(cfg: SegConfig) -> dict[str, Any]:
    """Train for `cfg.steps` steps and evaluate on the held-out images; writes last.pth and metrics.json."""
    device = _setup(cfg)
    output = Path(cfg.output)
    model, normalize = build_model(cfg)
    model, normalize = model.to(device), normalize.to(device)
    train_set, val_set = build_datasets(cfg)
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=16, shuffle=False)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=max(cfg.steps, 1),
        lr_min=cfg.min_lr,
        warmup_t=cfg.warmup_steps,
        warmup_lr_init=cfg.lr * 0.01,
        t_in_epochs=False,
    )
    criterion = SegmentationLoss(cfg.dice_weight, cfg.aux_weight)
    params = sum(p.numel() for p in model.parameters())
    metrics: dict[str, Any] = {"config": cfg.to_dict(), "params": params, "evals": []}

    def batches():
        for epoch in itertools.count():
            train_set.set_epoch(epoch)
            yield from loader

    start, losses = time.time(), []
    model.train()
    bar = tqdm(
        zip(range(1, cfg.steps + 1), batches()),
        total=cfg.steps,
        desc=f"train gate={cfg.gate}",
        disable=not cfg.progress,
    )
    for step, batch in bar:
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        out = model.forward_all(normalize(image))
        loss = criterion(out.logits, mask, out.aux_logits)
        if not math.isfinite(loss.item()):
            raise VisionGatesError(f"loss is {loss.item()} at step {step}; lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step_update(step)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
            result = {"step": step, **evaluate(model, normalize, val_loader, device)}
            metrics["evals"].append(result)
            log.info(
                "gate=%s seed=%d step %d: held-out Dice %.4f (pooled %.4f)",
                cfg.gate,
                cfg.seed,
                step,
                result["dice"],
                result["dice_pooled"],
            )
    metrics.update(
        train_loss_last20=float(np.mean(losses[-20:])) if losses else None,
        train_seconds=time.time() - start,
        **{k: v for k, v in metrics["evals"][-1].items() if k != "step"},
    )
    save_checkpoint({"model": model.state_dict(), "step": cfg.steps, "config": cfg.to_dict()}, output / "last.pth")
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def load_trained(path: str | Path, device: str = "cpu") -> tuple[AttentionUNet, Normalize, SegConfig]:
    """Rebuild the model of a checkpoint written by `train` and load its weights (weights_only)."""
    state = load_checkpoint(path)
    if "config" not in state or "model" not in state:
        raise VisionGatesError(f"'{path}' is not a checkpoint of visiongates.seg.loop.train")
    cfg = SegConfig(**state["config"])
    model, normalize = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), normalize.to(device), cfg


def compare_gates(cfg: SegConfig, seeds: list[int], gates: list[str | None]) -> dict[str, Any]:
    """Train every (gate, seed) pair with otherwise identical settings; per-gate held-out Dice mean and std."""
    rows: dict[str, Any] = {}
    for gate in gates:
        runs = []
        for seed in seeds:
            run_cfg = SegConfig(
                **{
                    **cfg.to_dict(),
                    "gate": gate,
                    "seed": seed,
                    "output": str(Path(cfg.output) / f"{gate or 'none'}_seed{seed}"),
                }
            )
            result = train(run_cfg)
            runs.append(
                {
                    "seed": seed,
                    "dice": result["dice"],
                    "dice_pooled": result["dice_pooled"],
                    "train_seconds": result["train_seconds"],
                    "params": result["params"],
                }
            )
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


_GATE_NAMES = {
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
            f"| {_GATE_NAMES.get(gate, gate)} | {row['params'] / 1e6:.3f}M "
            f"| {row['dice_mean']:.4f} ± {row['dice_std']:.4f} | {per_seed} |"
        )
    return "\n".join(lines)
