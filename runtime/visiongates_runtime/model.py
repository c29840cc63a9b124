"""An exported visiongates model in onnxruntime, from the .onnx file alone: classification (top-k with label
names), segmentation (a class-index mask per image) and restoration (a restored image per image), for lists of
image files, batched. A file that cannot be read gets its error in its own result; the others are still predicted.

    from visiongates_runtime import Model
    model = Model("model.onnx")
    for result in model.predict(["a.jpg", "b.png"]):
        print(result.path, result.error or result.topk)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataError
from .images import load_array
from .metadata import ModelInfo
from .preprocess import classification_input, dense_input
from .resize import resize_linear, resize_nearest
from .session import open_session, session_info


@dataclass
class Prediction:
    """What the model made of one image file.

    topk: classification, (class index, label, probability), most probable first. mask: segmentation, H x W uint8
    class indices at the file's size. image: restoration, H x W x C uint8 at the file's size. output: the graph's
    float output for this image (classification: logits [K]; dense tasks: [C, h, w] with padding cropped off, at
    the size the graph ran). error: why the file could not be predicted (then everything else is empty).
    """

    path: str
    topk: list[tuple[int, str, float]] = field(default_factory=list)
    mask: np.ndarray | None = None
    image: np.ndarray | None = None
    output: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

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
        Prediction(str(path), [(int(i), info.label(int(i)), float(p[i])) for i in idx], output=row)
        for path, p, idx, row in zip(paths, probs, order, logits)
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


class Model:
    """An exported visiongates model: its onnxruntime session, the preprocessing recorded in its metadata, and the
    post-processing its task needs. `max_pixels`: the decoder's pixel limit (see visiongates_runtime.images)."""

    def __init__(self, path: str | Path, threads: int | None = None, max_pixels: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads)
        self.info = session_info(self.session, f"'{self.path}'")
        self.input_name = self.session.get_inputs()[0].name
        self.max_pixels = max_pixels

    # the three steps a subclass may replace (visiongates.export.OnnxModel runs them through OpenCV and
    # albumentations, to check that these numpy versions give the same pixels)
    classification_input = staticmethod(classification_input)  # (image, info) -> [1, C, H, W] float32
    resize = staticmethod(resize_linear)  # (image, height, width), bilinear
    resize_mask = staticmethod(resize_nearest)  # (mask, height, width), nearest

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

    def read(self, path: str | Path) -> np.ndarray:
        """An image file as H x W x C uint8 with the model's channel count (ImageDecodeError if unreadable)."""
        return load_array(path, self.info.channels, self.max_pixels)

    def model_input(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        """C x H x W float32 for the model's task, and the box (top, left, height, width) of the image in the
        output of a dense task (the whole output for classification)."""
        if self.info.task == "classification":
            return self.classification_input(image, self.info), (0, 0, *self.info.input_size[1:])
        return dense_input(image, self.info, self.resize)

    def preprocess(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Image files as one batch (classification: all cropped to the exported size); errors propagate."""
        return np.stack([self.model_input(self.read(p))[0] for p in paths])

    def predict(self, paths: Iterable[str | Path], topk: int = 5, batch_size: int = 8) -> list[Prediction]:
        """One `Prediction` per file, in order: files are read `batch_size` at a time and images of equal input
        shape run as one batch; an unreadable file gets `error` set and costs nothing else."""
        return list(self.iter_predict(paths, topk, batch_size))

    def iter_predict(self, paths: Iterable[str | Path], topk: int = 5, batch_size: int = 8) -> Iterator[Prediction]:
        """`predict`, one result at a time (for folders too large to hold every output)."""
        if self.info.task == "detection":
            raise DataError(f"'{self.path}' is a detection model (raw head outputs): decode it with mmdet")
        chunk: list[str] = []
        for path in paths:
            chunk.append(str(path))
            if len(chunk) == batch_size:
                yield from self._predict_chunk(chunk, topk)
                chunk = []
        if chunk:
            yield from self._predict_chunk(chunk, topk)

    def _predict_chunk(self, paths: list[str], topk: int) -> list[Prediction]:
        results: dict[int, Prediction] = {}
        ready: dict[tuple[int, ...], list[tuple[int, np.ndarray, np.ndarray, tuple[int, ...]]]] = {}
        for i, path in enumerate(paths):
            try:
                image = self.read(path)
                x, box = self.model_input(image)
            except DataError as exc:
                results[i] = Prediction(path, error=str(exc))
                continue
            ready.setdefault(x.shape, []).append((i, image, x, box))
        for group in ready.values():
            out = self(np.stack([x for _, _, x, _ in group]))
            if self.info.task == "classification":
                names = [paths[i] for i, *_ in group]
                for (i, *_), prediction in zip(group, topk_predictions(out, self.info, names, topk)):
                    results[i] = prediction
                continue
            for (i, image, _, (top, left, height, width)), full in zip(group, out):
                results[i] = self._dense_result(paths[i], full[:, top : top + height, left : left + width], image)
        return [results[i] for i in range(len(paths))]

    def _dense_result(self, path: str, output: np.ndarray, image: np.ndarray) -> Prediction:
        """Segmentation: argmax mask; restoration: de-normalised 8-bit image; both at the file's own size."""
        height, width = image.shape[:2]
        if self.info.task == "segmentation":
            mask = output.argmax(axis=0).astype(np.uint8)
            if mask.shape != (height, width):
                mask = self.resize_mask(mask, height, width)
            return Prediction(path, mask=mask, output=output)
        mean = np.asarray(self.info.mean, np.float32)[:, None, None]
        std = np.asarray(self.info.std, np.float32)[:, None, None]
        restored = (np.clip(output * std + mean, 0.0, 1.0) * 255.0).round().astype(np.uint8).transpose(1, 2, 0)
        if restored.shape[:2] != (height, width):
            restored = self.resize(restored, height, width).reshape(height, width, -1)
        return Prediction(path, image=restored, output=output)

    def _only(self, path: str | Path, task: str) -> Prediction:
        if self.info.task != task:
            article = "an" if task[0] in "aeiou" else "a"
            raise DataError(f"'{self.path}' is a {self.info.task} model, not {article} {task} model")
        result = self._predict_chunk([str(path)], 1)[0]
        if result.error:
            raise DataError(result.error)
        return result

    def classify(self, paths: Sequence[str | Path], topk: int = 5, batch_size: int = 32) -> list[Prediction]:
        """Top-k classes with their label names for each image file (an unreadable file: a result with `error`)."""
        if self.info.task != "classification":
            raise DataError(f"'{self.path}' is a {self.info.task} model, not a classifier")
        return self.predict(paths, topk, batch_size)

    def restore(self, path: str | Path) -> np.ndarray:
        """The restored image of one file, H x W x C uint8 at its size (DataError if unreadable)."""
        return self._only(path, "restoration").image

    def segment(self, path: str | Path) -> np.ndarray:
        """The class index per pixel of one file, H x W uint8 at its size (DataError if unreadable)."""
        return self._only(path, "segmentation").mask
