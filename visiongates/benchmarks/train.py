"""Training-throughput benchmark: tools/train.py's loop against a bare forward+backward+step on the same model."""

from __future__ import annotations

import statistics
import tempfile

import timm
import torch
from timm.optim import create_optimizer_v2

from visiongates.data import build_dataset
from visiongates.engine.config import TrainConfig
from visiongates.tasks import train

from .timing import measure_one


def bare_loop_images_per_second(cfg: TrainConfig, num_classes: int, steps: int, warmup: int = 2) -> float:
    """Images/s of forward + loss + backward + optimizer step on random tensors already in memory."""
    torch.manual_seed(cfg.seed)
    model = timm.create_model(cfg.model, num_classes=num_classes).train()
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay)
    images = torch.randn(cfg.batch_size, 3, cfg.img_size, cfg.img_size)
    labels = torch.randint(0, num_classes, (cfg.batch_size,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timing = measure_one(step, reps=steps, warmup=warmup)
    return cfg.batch_size * 1e3 / statistics.fmean(timing.wall_ms)


def compare_training_throughput(cfg: TrainConfig, steps: int = 20) -> dict[str, float]:
    """Run both on the same machine, in this process, one after the other; returns images/s and their ratio."""
    with tempfile.TemporaryDirectory() as out:
        run = TrainConfig(
            **{
                **cfg.to_dict(),
                "output": out,
                "epochs": 1,
                "warmup_epochs": 0,
                "max_steps_per_epoch": steps,
                "progress": False,
            }
        )
        trainer_ips = train(run)["train_images_per_second"]
    num_classes = len(build_dataset(cfg.data, "train").classes)
    bare_ips = bare_loop_images_per_second(cfg, num_classes, steps)
    return {"train_py_images_per_s": trainer_ips, "bare_loop_images_per_s": bare_ips, "ratio": trainer_ips / bare_ips}
