"""onnxruntime beside PyTorch on real images: predictions side by side, and top-1 agreement over a dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from visiongates.data import ImageFolderDataset, collate_skip, eval_transform

from .metadata import ModelInfo
from .ort_inference import OnnxModel, Prediction, softmax, topk_predictions


def side_by_side(
    onnx_model: OnnxModel, torch_model: nn.Module, paths: Sequence[str | Path], topk: int = 1
) -> list[tuple[Prediction, Prediction]]:
    """(onnxruntime, PyTorch) predictions for each image file, both on the batch the .onnx metadata prescribes."""
    batch = onnx_model.preprocess(paths)
    with torch.inference_mode():
        torch_logits = torch_model(torch.from_numpy(batch)).float().numpy()
    names = [str(p) for p in paths]
    ours = topk_predictions(onnx_model(batch), onnx_model.info, names, topk)
    theirs = topk_predictions(torch_logits, onnx_model.info, names, topk)
    return list(zip(ours, theirs))


def side_by_side_table(rows: Sequence[tuple[Prediction, Prediction]]) -> str:
    """A plain-text table: image | onnxruntime top-1 (p) | PyTorch top-1 (p) | same."""
    lines = [f"{'image':<36} {'onnxruntime':<22} {'PyTorch':<22} same"]
    for ours, theirs in rows:
        (_, a, pa), (_, b, pb) = ours.topk[0], theirs.topk[0]
        lines.append(f"{Path(ours.path).name:<36} {f'{a} ({pa:.3f})':<22} {f'{b} ({pb:.3f})':<22} "
                     f"{'yes' if ours.top1 == theirs.top1 else 'NO'}")
    return "\n".join(lines)


def torch_folder_logits(
    model: nn.Module, info: ModelInfo, root: str | Path, batch_size: int = 32
) -> tuple[np.ndarray, list[int], list[Path]]:
    """PyTorch logits over an ImageFolder split through visiongates' own evaluation pipeline (as tools/eval.py)."""
    transform = eval_transform(info.input_size[1], crop_pct=info.crop_pct, mean=info.mean, std=info.std)
    dataset = ImageFolderDataset(root, transform, classes=info.labels or None)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_skip)
    logits = []
    with torch.inference_mode():
        for images, _, _ in loader:
            logits.append(model(images).float().numpy())
    return np.concatenate(logits), list(dataset.targets), list(dataset.samples)


def folder_agreement(
    onnx_model: OnnxModel, torch_model: nn.Module, torch_info: ModelInfo, root: str | Path
) -> dict[str, Any]:
    """Top-1 of onnxruntime (from the image files and the .onnx alone) vs PyTorch (from the dataset pipeline) on
    every image of an ImageFolder split: counts, both accuracies, the disagreeing files and the largest differences."""
    torch_logits, targets, files = torch_folder_logits(torch_model, torch_info, root)
    ort_logits = np.concatenate([onnx_model(onnx_model.preprocess(files[i:i + 32])) for i in range(0, len(files), 32)])
    ours, theirs = ort_logits.argmax(-1), torch_logits.argmax(-1)
    labels = np.asarray(targets)
    return {
        "images": len(files),
        "top1_agree": int((ours == theirs).sum()),
        "disagreements": [str(f) for f, a, b in zip(files, ours, theirs) if a != b],
        "onnxruntime_top1": float((ours == labels).mean() * 100),
        "pytorch_top1": float((theirs == labels).mean() * 100),
        "max_abs_prob_diff": float(np.abs(softmax(ort_logits) - softmax(torch_logits)).max()),
        "max_abs_logit_diff": float(np.abs(ort_logits - torch_logits).max()),
    }
