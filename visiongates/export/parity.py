"""Does the exported graph compute what the PyTorch model computes? Max abs difference on the same inputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from .metadata import ModelInfo

Shape = tuple[int, int, int, int]


def parity_shapes(info: ModelInfo, second_size: bool = True) -> list[Shape]:
    """The input size the model was exported at (batch 2), and where height and width are dynamic a second,
    non-square size (batch 1): one step (`size_multiple`, at least 32 px) taller and two steps wider."""
    channels, height, width = info.input_size
    shapes: list[Shape] = [(2, channels, height, width)]
    if second_size and "height" in info.dynamic and "width" in info.dynamic:
        step = max(info.size_multiple, 32)
        shapes.append((1, channels, height + step, width + 2 * step))
    return shapes


def sample_input(shape: Sequence[int], task: str, seed: int = 0) -> torch.Tensor:
    """A reproducible input: a normalised-image-like N(0, 1) tensor, or an image in [0, 1] for restoration."""
    generator = torch.Generator().manual_seed(seed)
    if task == "restoration":
        return torch.rand(*shape, generator=generator)
    return torch.randn(*shape, generator=generator)


def max_abs_diff(model: nn.Module, session: ort.InferenceSession, x: torch.Tensor) -> tuple[float, float]:
    """(max |PyTorch(x) - onnxruntime(x)|, max |PyTorch(x)|) over every element of the (first) output."""
    with torch.inference_mode():
        expected = model(x).float().numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != expected.shape:
        raise AssertionError(f"onnxruntime output {got.shape} vs PyTorch {expected.shape} for input {tuple(x.shape)}")
    return float(np.abs(got - expected).max()), float(np.abs(expected).max())


def within_tolerance(diff: float, peak: float, tolerance: float = 1e-4) -> bool:
    """`diff` <= tolerance, scaled by the output's magnitude where that exceeds 1 (fp32 rounding grows with it:
    an untrained MAXIM emits values near +-60, where PyTorch's own fp32 result is 1e-4 away from fp64)."""
    return diff <= tolerance * max(1.0, peak)


def check_parity(
    model: nn.Module, session: ort.InferenceSession, info: ModelInfo, shapes: Sequence[Shape] | None = None
) -> dict[str, tuple[float, float]]:
    """{'BxCxHxW': (max abs difference, max abs PyTorch output)} at each shape (default: `parity_shapes(info)`)."""
    shapes = shapes or parity_shapes(info)
    return {"x".join(map(str, s)): max_abs_diff(model, session, sample_input(s, info.task)) for s in shapes}
