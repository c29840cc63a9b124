"""Restoration training and evaluation loop (what tools/train_restore.py runs).

Training: Adam with linear warmup and cosine decay (timm's CosineLRScheduler, per step), MAXIM's multi-stage,
multi-scale Charbonnier + frequency loss, random crops.
Evaluation: PSNR / SSIM (scikit-image) of the restored and of the degraded held-out images, side-by-side PNGs
(input | output | target), metrics.json. Checkpoints are written atomically and read with weights_only=True.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from timm.scheduler import CosineLRScheduler
from torch import nn
from tqdm import tqdm

from visiongates.engine.checkpoint import load_checkpoint, load_model_weights, model_state_from, save_checkpoint
from visiongates.errors import VisionGatesError
from visiongates.models import check_model_name

from .config import RestoreConfig
from .datasets import PairedFolderDataset, SyntheticDegradationDataset
from .degradations import build_degradation
from .losses import MultiScaleRestorationLoss
from .metrics import psnr, ssim

__all__ = [
    "build_model",
    "load_weights",
    "build_dataset",
    "evaluate",
    "train",
    "evaluate_checkpoint",
    "save_side_by_side",
]

log = logging.getLogger(__name__)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load our checkpoint (.pth, weights_only) or an official MAXIM Flax checkpoint (.npz) into `model`."""
    path = Path(path)
    if path.suffix == ".npz":
        from visiongates.models.maxim_flax import convert_flax_params, load_flax_npz

        model.load_state_dict(convert_flax_params(load_flax_npz(path), model), strict=True)
    else:
        load_model_weights(model, model_state_from(load_checkpoint(path)), source=f"checkpoint '{path}'")


def build_model(cfg: RestoreConfig) -> nn.Module:
    """timm.create_model(cfg.model, **cfg.model_kwargs), with `cfg.init` weights if given."""
    model = timm.create_model(check_model_name(cfg.model), **cfg.model_kwargs)
    if cfg.init:
        load_weights(model, cfg.init)
    return model


def build_dataset(cfg: RestoreConfig, train: bool) -> torch.utils.data.Dataset:
    """The training or held-out dataset of `cfg` (paired folders, or clean images + synthetic degradations)."""
    root = cfg.train_dir if train else cfg.val_dir
    if root is None:
        raise VisionGatesError(f"no {'train_dir' if train else 'val_dir'} given")
    crop = cfg.crop_size if train else cfg.eval_crop_size
    limit = cfg.max_train_images if train else cfg.max_eval_images
    if cfg.paired:
        return PairedFolderDataset(root, crop, train, cfg.seed, limit)
    return SyntheticDegradationDataset(root, build_degradation(cfg.degradations), crop, train, cfg.seed, limit)


def _forward_all(model: nn.Module, x: torch.Tensor) -> Any:
    """Every stage / scale output when the model offers them (MAXIM's return_all), else its single output."""
    if "return_all" in inspect.signature(model.forward).parameters:
        return model(x, return_all=True)
    return model(x)


def save_side_by_side(inp: torch.Tensor, out: torch.Tensor, target: torch.Tensor, path: str | Path) -> None:
    """Write input | output | target (CHW tensors in [0, 1]) as one PNG, with 4-pixel white separators."""
    h = inp.shape[-2]
    gap = torch.ones(3, h, 4)
    row = torch.cat([inp.float().cpu(), gap, out.float().cpu(), gap, target.float().cpu()], dim=-1)
    array = (row.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: torch.device | str = "cpu",
    samples_dir: str | Path | None = None,
    num_samples: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Mean PSNR / SSIM of the model outputs and of the degraded inputs over `loader` (final output only)."""
    was_training = model.training
    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    saved = 0
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        inp, target = batch["input"].to(device), batch["target"].to(device)
        out = model(inp)
        for i in range(inp.shape[0]):
            scores["psnr"].append(psnr(out[i], target[i]))
            scores["ssim"].append(ssim(out[i], target[i]))
            scores["input_psnr"].append(psnr(inp[i], target[i]))
            scores["input_ssim"].append(ssim(inp[i], target[i]))
            if samples_dir is not None and saved < num_samples:
                save_side_by_side(inp[i], out[i], target[i], Path(samples_dir) / f"{batch['name'][i]}.png")
                saved += 1
    model.train(was_training)
    result = {k: float(np.mean(v)) for k, v in scores.items()}
    result["gain_db"] = result["psnr"] - result["input_psnr"]
    result["images"] = len(scores["psnr"])
    return result


def _loader(dataset, cfg: RestoreConfig, train: bool) -> torch.utils.data.DataLoader:
    if train:
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=cfg.workers,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
    batch_size = cfg.batch_size if cfg.eval_crop_size else 1  # whole images differ in size
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=cfg.workers)


def _setup(cfg: RestoreConfig) -> torch.device:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return torch.device(cfg.device)


def _write_metrics(output: Path, metrics: dict[str, Any]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def train(cfg: RestoreConfig) -> dict[str, Any]:
    """Train `cfg.model` for `cfg.steps` steps; evaluate on `cfg.val_dir` (if given) before and after training.

    Writes <output>/last.pth (model, optimizer, step, config), <output>/metrics.json and
    <output>/samples/step_<n>/*.png. Returns the metrics.
    """
    device = _setup(cfg)
    output = Path(cfg.output)
    model = build_model(cfg).to(device)
    train_set = build_dataset(cfg, train=True)
    if len(train_set) < cfg.batch_size:
        raise VisionGatesError(f"{len(train_set)} training images are fewer than batch_size {cfg.batch_size}")
    val_loader = _loader(build_dataset(cfg, train=False), cfg, train=False) if cfg.val_dir else None
    loader = _loader(train_set, cfg, train=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=max(cfg.steps, 1),
        lr_min=cfg.min_lr,
        warmup_t=cfg.warmup_steps,
        warmup_lr_init=cfg.lr * 0.01,
        t_in_epochs=False,
    )
    criterion = MultiScaleRestorationLoss(
        cfg.charbonnier_eps, cfg.freq_weight, getattr(model, "nearest_mode", "nearest-exact")
    )
    metrics: dict[str, Any] = {"config": cfg.to_dict(), "evals": []}

    def run_eval(step: int) -> None:
        if val_loader is None:
            return
        result = evaluate(model, val_loader, device, output / "samples" / f"step_{step}", cfg.num_samples, cfg.progress)
        result["step"] = step
        metrics["evals"].append(result)
        log.info(
            "step %d: PSNR %.2f dB (input %.2f), SSIM %.4f (input %.4f)",
            step,
            result["psnr"],
            result["input_psnr"],
            result["ssim"],
            result["input_ssim"],
        )
        if cfg.progress:
            tqdm.write(
                f"step {step}: PSNR {result['psnr']:.2f} dB (input {result['input_psnr']:.2f}, "
                f"gain {result['gain_db']:+.2f}), SSIM {result['ssim']:.4f} (input {result['input_ssim']:.4f})"
            )

    run_eval(0)

    def batches():
        for epoch in itertools.count():
            train_set.set_epoch(epoch)
            yield from loader

    model.train()
    losses = []
    bar = tqdm(zip(range(1, cfg.steps + 1), batches()), total=cfg.steps, desc="train", disable=not cfg.progress)
    for step, batch in bar:
        inp, target = batch["input"].to(device), batch["target"].to(device)
        loss = criterion(_forward_all(model, inp), target)
        if not math.isfinite(loss.item()):
            raise VisionGatesError(f"loss is {loss.item()} at step {step}; lower lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        optimizer.step()
        scheduler.step_update(step)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
            run_eval(step)
    metrics["train_loss_last20"] = float(np.mean(losses[-20:])) if losses else None
    run_eval(cfg.steps)
    save_checkpoint(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": cfg.steps,
            "arch": cfg.model,
            "config": cfg.to_dict(),
        },
        output / "last.pth",
    )
    _write_metrics(output, metrics)
    return metrics


def evaluate_checkpoint(cfg: RestoreConfig) -> dict[str, Any]:
    """Evaluate `cfg.init` (or the untrained model) on `cfg.val_dir`; writes metrics.json and sample PNGs."""
    device = _setup(cfg)
    model = build_model(cfg).to(device)
    loader = _loader(build_dataset(cfg, train=False), cfg, train=False)
    result = evaluate(model, loader, device, Path(cfg.output) / "samples" / "eval", cfg.num_samples, cfg.progress)
    _write_metrics(Path(cfg.output), {"config": cfg.to_dict(), "evals": [result]})
    return result
