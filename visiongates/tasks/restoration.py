"""The restoration task on the one engine (MAXIM and other image-to-image models).

Training: MAXIM's multi-stage, multi-scale Charbonnier + frequency loss on random crops (Adam and a per-step cosine
schedule with warmup by default: a `steps` budget). Evaluation: PSNR / SSIM (scikit-image) of the restored and of
the degraded held-out images, side-by-side PNGs (input | output | target) under samples/step_<n>/, metrics.json.
Weights start from our .pth or an official Flax .npz (`pretrained`). Datasets, degradations, losses and metrics
live in visiongates.restore.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from visiongates.engine.checkpoint import load_checkpoint, load_model_weights, model_state_from
from visiongates.engine.config import TrainConfig, model_kwargs
from visiongates.engine.task import Task
from visiongates.errors import VisionGatesError
from visiongates.models import check_model_name
from visiongates.restore.datasets import PairedFolderDataset, SyntheticDegradationDataset
from visiongates.restore.degradations import build_degradation
from visiongates.restore.losses import MultiScaleRestorationLoss
from visiongates.restore.metrics import psnr, ssim

__all__ = ["RestorationTask", "build_dataset", "evaluate", "forward_all", "load_weights", "save_side_by_side"]


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load our checkpoint (.pth, weights_only) or an official MAXIM Flax checkpoint (.npz) into `model`."""
    path = Path(path)
    if path.suffix == ".npz":
        from visiongates.models.maxim_flax import convert_flax_params, load_flax_npz

        model.load_state_dict(convert_flax_params(load_flax_npz(path), model), strict=True)
    else:
        load_model_weights(model, model_state_from(load_checkpoint(path)), source=f"checkpoint '{path}'")


def build_dataset(cfg: TrainConfig, train: bool) -> Dataset:
    """The training or held-out dataset of `cfg` (paired folders, or clean images + synthetic degradations)."""
    root = cfg.train_dir if train else cfg.val_dir
    if root is None:
        raise VisionGatesError(f"no {'train_dir' if train else 'val_dir'} given")
    crop = cfg.crop_size if train else cfg.eval_crop_size
    limit = cfg.max_train_images if train else cfg.max_eval_images
    if cfg.paired:
        return PairedFolderDataset(root, crop, train, cfg.seed, limit)
    return SyntheticDegradationDataset(root, build_degradation(cfg.degradations), crop, train, cfg.seed, limit)


def forward_all(model: nn.Module, x: torch.Tensor) -> Any:
    """Every stage / scale output when the model offers them (MAXIM's return_all), else its single output."""
    base = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if "return_all" in inspect.signature(base.forward).parameters:
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
) -> dict[str, float]:
    """Mean PSNR / SSIM of the model outputs and of the degraded inputs over `loader` (final output only; summed
    over the ranks of a torch.distributed group)."""
    was_training = model.training
    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    saved = 0
    for batch in loader:
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
    sums = torch.tensor([sum(v) for v in scores.values()] + [len(scores["psnr"])], dtype=torch.float64)
    if torch.distributed.is_available() and torch.distributed.is_initialized():  # each rank saw its shard
        torch.distributed.all_reduce(sums)
    count = max(int(sums[-1]), 1)
    result = {k: float(total) / count for k, total in zip(scores, sums.tolist())}
    result["gain_db"] = result["psnr"] - result["input_psnr"]
    result["images"] = int(sums[-1])
    return result


class RestorationTask(Task):
    """Image restoration; best.pth is chosen on held-out PSNR, also measured before training (step 0)."""

    name = "restoration"
    metric = "psnr"
    mode = "max"
    resume_keys = ("train_dir", "crop_size", "paired", "degradations", "max_train_images")
    evaluate_before_training = True

    def build_datasets(self, need_train: bool = True) -> tuple[Dataset | None, Dataset]:
        cfg = self.cfg
        train_set = build_dataset(cfg, train=True) if need_train else None
        if train_set is not None and len(train_set) < cfg.batch_size:
            raise VisionGatesError(f"{len(train_set)} training images are fewer than batch_size {cfg.batch_size}")
        return train_set, build_dataset(cfg, train=False)

    def val_batch_size(self) -> int:
        return self.cfg.batch_size if self.cfg.eval_crop_size else 1  # whole images differ in size

    def build_model(self, train_ds: Dataset | None) -> nn.Module:
        cfg = self.cfg
        model = timm.create_model(check_model_name(cfg.model), **model_kwargs(cfg))
        if cfg.pretrained:
            load_weights(model, cfg.pretrained)
        self.criterion = MultiScaleRestorationLoss(
            cfg.charbonnier_eps, cfg.freq_weight, getattr(model, "nearest_mode", "nearest-exact")
        )
        return model.to(self.device)

    def batch_size_of(self, batch: Any) -> tuple[int, int]:
        return len(batch["input"]), 0

    def training_loss(self, model: nn.Module, batch: Any, extra: dict[str, float]) -> torch.Tensor:
        inp, target = batch["input"].to(self.device), batch["target"].to(self.device)
        with self.autocast():
            outputs = forward_all(model, inp)
        return self.criterion(outputs, target)

    def evaluate(self, model: nn.Module, loader: Any, step: int, output: Path | None) -> dict[str, Any]:
        samples = None if output is None else output / "samples" / f"step_{step}"
        return evaluate(model, loader, self.device, samples, self.cfg.num_samples if output else 0)

    def describe(self, metrics: dict[str, Any]) -> str:
        return (
            f"PSNR {metrics['psnr']:.2f} dB (input {metrics['input_psnr']:.2f}, gain {metrics['gain_db']:+.2f}), "
            f"SSIM {metrics['ssim']:.4f} (input {metrics['input_ssim']:.4f})"
        )

    def checkpoint_entries(self) -> dict[str, Any]:
        return {"arch": self.cfg.model}  # export/ recognises a restoration checkpoint by it

    def summary(self, history: list[dict[str, Any]], evals: list[dict[str, Any]]) -> dict[str, Any]:
        return {"train_loss": history[-1]["train_loss"] if history else None}

    def write_results(self, output: Path, summary: dict[str, Any]) -> None:
        metrics = {"config": self.cfg.to_dict(), **{k: v for k, v in summary.items() if k != "rank_checksums"}}
        (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
