"""Inference with an exported model in onnxruntime through visiongates' own preprocessing (albumentations and
OpenCV). The model class, batching, per-file errors and post-processing are the runtime's
(runtime/visiongates_runtime/model.py); only the resize, crop and normalise steps are swapped for the ones
validation used, so this is the reference the torch-free runtime is tested against.
"""

from __future__ import annotations

from pathlib import Path

import torch
from visiongates_runtime.model import Model, Prediction, save_mask, softmax, topk_predictions  # noqa: F401

from .preprocess import classification_input, cv2_resize, cv2_resize_nearest


class OnnxModel(Model):
    """An exported visiongates model (see `visiongates_runtime.Model`) with the training stack's preprocessing;
    threads default to torch's thread count."""

    classification_input = staticmethod(classification_input)
    resize = staticmethod(cv2_resize)
    resize_mask = staticmethod(cv2_resize_nearest)

    def __init__(self, path: str | Path, threads: int | None = None, max_pixels: int | None = None) -> None:
        super().__init__(path, threads or torch.get_num_threads(), max_pixels)
