"""onnxruntime beside PyTorch on real images: predictions side by side, and top-1 agreement over a dataset."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from visiongates.data import ImageFolderDataset, collate_skip, eval_transform
from visiongates.errors import DataError

from .metadata import ModelInfo
from .ort_inference import OnnxModel, Prediction, softmax, topk_predictions

log = logging.getLogger(__name__)


def check_same_model(onnx_info: ModelInfo, torch_info: ModelInfo, source: str) -> None:
    """DataError unless `source` (the PyTorch side) is the architecture and classes of the .onnx file: comparing two
    different models would report a disagreement on every image instead of saying why. The input size may differ
    (weights trained at one size and exported at another are one model; both sides run on the .onnx file's input)."""
    ours = (onnx_info.model_name, list(onnx_info.labels))
    theirs = (torch_info.model_name, list(torch_info.labels))
    if ours != theirs:

        def describe(name: str, labels: list[str]) -> str:
            shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
            return f"{name} with {len(labels)} classes ({shown})"

        raise DataError(
            f"'{source}' is not the model this .onnx file was exported from: the file holds "
            f"{describe(*ours)}, '{source}' {describe(*theirs)}"
        )


def side_by_side(
    onnx_model: OnnxModel, torch_model: nn.Module, paths: Sequence[str | Path], topk: int = 1
) -> list[tuple[Prediction, Prediction]]:
    """(onnxruntime, PyTorch) predictions for each image file, both on the batch the .onnx metadata prescribes.
    A file that cannot be read is skipped: its row holds two `Prediction`s with `error` set."""
    readable, inputs, errors = [], [], {}
    for path in map(str, paths):
        try:
            inputs.append(onnx_model.model_input(onnx_model.read(path))[0])
            readable.append(path)
        except DataError as exc:
            log.warning("skipping unreadable image %s", exc)
            errors[path] = str(exc)
    found: dict[str, tuple[Prediction, Prediction]] = {}
    if inputs:
        batch = np.stack(inputs)
        with torch.inference_mode():
            torch_logits = torch_model(torch.from_numpy(batch)).float().numpy()
        ours = topk_predictions(onnx_model(batch), onnx_model.info, readable, topk)
        theirs = topk_predictions(torch_logits, onnx_model.info, readable, topk)
        found = {a.path: (a, b) for a, b in zip(ours, theirs)}
    return [found.get(p) or (Prediction(p, error=errors[p]), Prediction(p, error=errors[p])) for p in map(str, paths)]


def side_by_side_table(rows: Sequence[tuple[Prediction, Prediction]]) -> str:
    """A plain-text table: image (as given) | onnxruntime top-1 (p) | PyTorch top-1 (p) | same (or 'skipped')."""
    lines = [f"{'image':<36} {'onnxruntime':<22} {'PyTorch':<22} same"]
    for ours, theirs in rows:
        if not ours.ok:
            lines.append(f"{ours.path:<36} {'unreadable':<22} {'unreadable':<22} skipped")
            continue
        (_, a, pa), (_, b, pb) = ours.topk[0], theirs.topk[0]
        lines.append(
            f"{ours.path:<36} {f'{a} ({pa:.3f})':<22} {f'{b} ({pb:.3f})':<22} "
            f"{'yes' if ours.top1 == theirs.top1 else 'NO'}"
        )
    return "\n".join(lines)


def torch_folder_logits(
    model: nn.Module, info: ModelInfo, root: str | Path, batch_size: int = 32
) -> tuple[np.ndarray, list[int], list[Path], list[Path]]:
    """PyTorch logits over an ImageFolder split through visiongates' own evaluation pipeline (as tools/eval.py):
    (logits, labels and files of the readable images, the unreadable files skipped)."""
    transform = eval_transform(info.input_size[1], crop_pct=info.crop_pct, mean=info.mean, std=info.std)
    dataset = ImageFolderDataset(root, transform, classes=info.labels or None)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_skip)  # in-process: `readable` is filled
    logits = []
    with torch.inference_mode():
        for images, _, _ in loader:
            if len(images):
                logits.append(model(images).float().numpy())
    readable = dataset.readable()
    if not readable:
        raise DataError(f"no readable image in '{root}'")
    targets = [t for p, t in zip(dataset.samples, dataset.targets) if p not in dataset.unreadable]
    return np.concatenate(logits), targets, readable, sorted(dataset.unreadable)


def folder_agreement(
    onnx_model: OnnxModel, torch_model: nn.Module, torch_info: ModelInfo, root: str | Path
) -> dict[str, Any]:
    """Top-1 of onnxruntime (from the image files and the .onnx alone) vs PyTorch (from the dataset pipeline) on
    every readable image of an ImageFolder split: counts, both accuracies, the disagreeing files, the largest
    differences, and the unreadable files skipped (as training and tools/eval.py skip them)."""
    torch_logits, targets, files, unreadable = torch_folder_logits(torch_model, torch_info, root)
    ort_logits = np.concatenate(
        [onnx_model(onnx_model.preprocess(files[i : i + 32])) for i in range(0, len(files), 32)]
    )
    ours, theirs = ort_logits.argmax(-1), torch_logits.argmax(-1)
    labels = np.asarray(targets)
    return {
        "images": len(files),
        "skipped": len(unreadable),
        "skipped_files": [str(f) for f in unreadable],
        "top1_agree": int((ours == theirs).sum()),
        "disagreements": [str(f) for f, a, b in zip(files, ours, theirs) if a != b],
        "onnxruntime_top1": float((ours == labels).mean() * 100),
        "pytorch_top1": float((theirs == labels).mean() * 100),
        "max_abs_prob_diff": float(np.abs(softmax(ort_logits) - softmax(torch_logits)).max()),
        "max_abs_logit_diff": float(np.abs(ort_logits - torch_logits).max()),
    }
