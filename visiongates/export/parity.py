"""Does the exported graph compute what the PyTorch model computes? Max abs difference on the same inputs.

Checked where every block matters: at initialisation (a registry name's seed-0 weights) some blocks barely move
the output (a one-block ViG-T graph whose BiGLA outputs are zeros stays 2e-7 from the model, under the 1e-4 the
check accepts; tests/test_export.py), so a graph that computes one of them wrongly would pass. The check therefore
runs the exported graph with the weights of `perturbed_copy` beside that copy in PyTorch (`GraphCheck`); the
written file keeps the real weights.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from .metadata import ModelInfo
from .runtime import open_session

Shape = tuple[int, int, int, int]

PERTURB_STD = 0.3  # added to every 1-D parameter (norm scales and shifts, biases, gating parameters)
# where the noise alone leaves a block nearly inert: BiGLA (ViG) needs strong queries / keys and decays
BIGLA_SCALES = {"qkv.weight": 30.0, "decay_up.weight": 4.0, "decay_up.bias": 4.0}


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


def perturbed_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """An eval-mode copy of `model` with deterministic weights under which each block matters: every 1-D
    floating-point parameter plus N(0, PERTURB_STD^2), then in each BiGLA mixer the BIGLA_SCALES factors."""
    from visiongates.layers.bigla_attn import BiGlaAttention

    perturbed = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in perturbed.parameters():
            if param.ndim == 1 and param.is_floating_point():
                param.add_(torch.randn(param.shape, generator=generator).to(param.dtype), alpha=PERTURB_STD)
        for module in perturbed.modules():
            if isinstance(module, BiGlaAttention):
                for name, factor in BIGLA_SCALES.items():
                    module.get_parameter(name).mul_(factor)
    return perturbed


@dataclass
class GraphCheck:
    """An exported graph run in onnxruntime with `perturbed_copy`'s weights, beside that copy in PyTorch."""

    model: nn.Module
    session: ort.InferenceSession
    info: ModelInfo

    def parity(self, shapes: Sequence[Shape] | None = None) -> dict[str, tuple[float, float]]:
        """`check_parity` of the perturbed graph against the perturbed model."""
        return check_parity(self.model, self.session, self.info, shapes)


def graph_check(graph: onnx.ModelProto, model: nn.Module, info: ModelInfo, optimize: bool) -> GraphCheck:
    """A `GraphCheck` of an exported graph before the optimizer (its initializers still carry the parameter
    names): it takes the perturbed weights, then goes through the same optimizer as the written file."""
    import onnx_ir as ir

    perturbed = perturbed_copy(model)
    checked = torch.onnx.ONNXProgram(ir.serde.deserialize_model(graph), None)
    # a parameter that the graph lacks (unused, or folded under another name) keeps its value there: where it
    # matters, the two sides then differ and the check fails
    initializers = checked.model.graph.initializers
    checked.apply_weights({name: p.detach() for name, p in perturbed.named_parameters() if name in initializers})
    if optimize:
        checked.optimize()
    with tempfile.TemporaryDirectory() as tmp:
        checked.save(Path(tmp) / "check.onnx")
        session = open_session(Path(tmp) / "check.onnx")
    return GraphCheck(perturbed, session, info)
