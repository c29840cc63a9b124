"""Inference with an exported model in onnxruntime, from the .onnx file alone: classification (top-k with label
names), restoration (an image) and segmentation (a class-index mask)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from visiongates.errors import DataError

from .metadata import ModelInfo
from .preprocess import dense_input, model_input, read_image
from .runtime import open_session, session_info


@dataclass
class Prediction:
    """Top-k classes of one image: (class index, label, probability), most probable first."""

    path: str
    topk: list[tuple[int, str, float]]

    @property
    def top1(self) -> int:
        return self.topk[0][0]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk_predictions(logits: np.ndarray, info: ModelInfo, paths: Sequence[str], k: int = 5) -> list[Prediction]:
    """`Prediction`s from a [B, K] logit array."""
    probs = softmax(logits.astype(np.float64))
    k = min(k, probs.shape[-1])
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return [
        Prediction(str(path), [(int(i), info.label(int(i)), float(p[i])) for i in idx])
        for path, p, idx in zip(paths, probs, order)
    ]


def save_mask(mask: np.ndarray, path: str | Path) -> Path:
    """A class-index mask as an 8-bit palette PNG (class 0 black, others in distinct colours)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    rng = np.random.default_rng(0)
    palette = np.concatenate([[0, 0, 0], rng.integers(64, 256, size=255 * 3)]).astype(np.uint8)
    image.putpalette(palette.tolist())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


class OnnxModel:
    """An exported visiongates model: its onnxruntime session, the preprocessing recorded in its metadata, and the
    post-processing its task needs."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads)
        self.info = session_info(self.session, f"'{self.path}'")
        self.input_name = self.session.get_inputs()[0].name

    def check_input(self, batch: np.ndarray) -> None:
        """Raise DataError for a batch the graph cannot take (rank, channels, or size where it is fixed)."""
        info = self.info
        if batch.ndim != 4:
            raise DataError(f"the model takes a batch [B, C, H, W]; got an array of shape {tuple(batch.shape)}")
        if batch.shape[1] != info.channels:
            raise DataError(f"the input has {batch.shape[1]} channel(s); '{self.path}' takes {info.channels}")
        for axis, name in ((2, "height"), (3, "width")):
            size, exported = batch.shape[axis], info.input_size[axis - 1]
            if name not in info.dynamic and size != exported:
                raise DataError(f"'{self.path}' was exported with a fixed {name} of {exported}; got {size}")
            if name in info.dynamic and size % info.size_multiple:
                raise DataError(f"'{info.model_name}' needs a {name} that is a multiple of {info.size_multiple}")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run the graph on a preprocessed float batch [B, C, H, W]; returns its output."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self.check_input(batch)
        return self.session.run(None, {self.input_name: batch})[0]

    def preprocess(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Image files as one batch (classification: all cropped to the exported size)."""
        return np.stack([model_input(read_image(p, self.info.channels), self.info) for p in paths])

    def classify(self, paths: Sequence[str | Path], topk: int = 5, batch_size: int = 32) -> list[Prediction]:
        """Top-k classes with their label names for each image file."""
        if self.info.task != "classification":
            raise DataError(f"'{self.path}' is a {self.info.task} model, not a classifier")
        out: list[Prediction] = []
        for start in range(0, len(paths), batch_size):
            chunk = list(paths[start:start + batch_size])
            out += topk_predictions(self(self.preprocess(chunk)), self.info, [str(p) for p in chunk], topk)
        return out

    def dense(self, path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
        """The model's output [C, h, w] for one whole image (padding cropped off), and the image's own (H, W)."""
        image = read_image(path, self.info.channels)
        x, (top, left, height, width) = dense_input(image, self.info)
        return self(x[None])[0][:, top:top + height, left:left + width], image.shape[:2]

    def restore(self, path: str | Path) -> np.ndarray:
        """The restored image, H x W x C uint8 at the input's size."""
        if self.info.task != "restoration":
            raise DataError(f"'{self.path}' is a {self.info.task} model, not a restoration model")
        out, (height, width) = self.dense(path)
        out = out * np.asarray(self.info.std, np.float32)[:, None, None] + np.asarray(self.info.mean, np.float32)[
            :, None, None]
        image = (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8).transpose(1, 2, 0)
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
        return image

    def segment(self, path: str | Path) -> np.ndarray:
        """The class index per pixel, H x W uint8 at the input's size."""
        if self.info.task != "segmentation":
            raise DataError(f"'{self.path}' is a {self.info.task} model, not a segmentation model")
        logits, (height, width) = self.dense(path)
        mask = logits.argmax(axis=0).astype(np.uint8)
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        return mask
