"""What can be exported: a registry name (fresh weights from a fixed seed) or a trained checkpoint, as a PyTorch
model in eval mode plus the `ModelInfo` that will travel with the .onnx file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import ImageNetInfo, infer_imagenet_subset
from torch import nn

from visiongates.engine.checkpoint import load_checkpoint, load_model_weights, model_state_from
from visiongates.engine.evaluate import load_classifier
from visiongates.errors import CheckpointError
from visiongates.models import check_model_name, model_facts

from .metadata import ModelInfo

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def is_checkpoint(source: str) -> bool:
    """True when `source` names a checkpoint file (an existing file, or a path with a checkpoint suffix), or a
    folder that is not also a registry name (loading it then says it is a folder)."""
    path = Path(source)
    return path.suffix.lower() in CHECKPOINT_SUFFIXES or path.is_file() or (path.is_dir() and not timm.is_model(source))


def task_of(model_name: str) -> str:
    """The export task of a registered model: 'restoration' where its facts say so, else 'classification'."""
    facts = model_facts(model_name)
    return "restoration" if facts is not None and facts.task == "restoration" else "classification"


def imagenet_labels(model: nn.Module) -> list[str]:
    """Class names for a 1000/11k/22k-class ImageNet head (timm ships them); empty for any other head."""
    subset = infer_imagenet_subset(model)
    if subset is None or getattr(model, "num_classes", 0) == 0:
        return []
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(info.num_classes())]


def info_from_cfg(model: nn.Module, name: str, task: str, source: str, **overrides: Any) -> ModelInfo:
    """`ModelInfo` from the model's timm pretrained_cfg (input size, mean, std, crop_pct, interpolation)."""
    cfg = {**model.pretrained_cfg, **{k: v for k, v in overrides.items() if v is not None}}
    return ModelInfo(
        task=task,
        model_name=name,
        input_size=tuple(cfg["input_size"]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        crop_pct=float(cfg.get("crop_pct") or 1.0),
        interpolation=cfg.get("interpolation") or "bilinear",
        source=source,
    )


def model_from_registry(name: str, seed: int = 0, **kwargs: Any) -> tuple[nn.Module, ModelInfo]:
    """A registered model with weights drawn from `seed` (the same seed gives the same weights again)."""
    check_model_name(name)
    torch.manual_seed(seed)
    model = timm.create_model(name, **kwargs).eval()
    task = task_of(name)
    info = info_from_cfg(model, name, task, source=f"registry:{name}")
    info.seed = seed
    if task == "classification":
        info.labels = imagenet_labels(model)
    return model, info


def segmentation_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> tuple[nn.Module, ModelInfo]:
    """An Attention U-Net checkpoint of tools/train.py's segmentation task (background / coin), normalisation as in
    its training loop (the encoder's mean and std on [0, 1] images)."""
    from visiongates.engine.config import load_config
    from visiongates.tasks.segmentation import build_model

    cfg = load_config(**{**ckpt["config"], "task": "segmentation"})
    model, normalize = build_model(cfg)
    load_model_weights(model, model_state_from(ckpt), source=f"checkpoint '{path}'")
    info = ModelInfo(
        task="segmentation",
        model_name=f"attention_unet[{cfg.encoder}]",
        input_size=(3, cfg.size, cfg.size),
        mean=tuple(normalize.mean.flatten().tolist()),
        std=tuple(normalize.std.flatten().tolist()),
        labels=["background", "coin"],
        source=str(path),
    )
    return model.eval(), info


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, ModelInfo]:
    """A checkpoint of tools/train.py: a classifier ('classes', 'data_config'), a restoration model ('arch') or an
    Attention U-Net (config with 'encoder')."""
    ckpt = load_checkpoint(path)
    if "classes" in ckpt:
        model, ckpt = load_classifier(path)
        data_config = ckpt.get("data_config") or {}
        info = info_from_cfg(model, ckpt["model_name"], "classification", source=str(path), **data_config)
        info.labels = [str(c) for c in ckpt["classes"]]
        return model, info
    if "arch" in ckpt:
        name = check_model_name(ckpt["arch"])
        kwargs = (ckpt.get("config") or {}).get("model_kwargs") or {}
        model = timm.create_model(name, **kwargs)
        load_model_weights(model, model_state_from(ckpt), source=f"checkpoint '{path}'")
        return model.eval(), info_from_cfg(model, name, task_of(name), source=str(path))
    if "encoder" in (ckpt.get("config") or {}):
        return segmentation_from_checkpoint(ckpt, path)
    raise CheckpointError(
        f"'{path}' is not a checkpoint of tools/train.py (a classifier's 'classes', a restoration model's 'arch' or "
        "an Attention U-Net's config 'encoder')"
    )


def load_source(source: str, seed: int = 0) -> tuple[nn.Module, ModelInfo]:
    """A checkpoint path or a registry name, as (model in eval mode, ModelInfo)."""
    if Path(source).suffix.lower() == ".onnx":
        raise CheckpointError(f"'{source}' is an ONNX file; give the checkpoint or registry name it was exported from")
    return model_from_checkpoint(source) if is_checkpoint(source) else model_from_registry(source, seed=seed)


def recorded_source(info: ModelInfo) -> str:
    """The checkpoint path or registry name an exported model came from (as its metadata records it)."""
    return info.source.removeprefix("registry:") or info.model_name
