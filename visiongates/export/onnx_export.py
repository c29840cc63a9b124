"""Export a model to ONNX with torch's dynamo exporter: dynamic batch (and height/width where the family allows),
preprocessing and labels in metadata_props, and an onnxruntime-vs-PyTorch check of the written file."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.export import Dim

from visiongates.errors import ExportError, OpsetError

from .families import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, ExportSpec, spec_for
from .metadata import ModelInfo
from .parity import GraphCheck, graph_check
from .sources import load_source

log = logging.getLogger(__name__)

MAX_DIM = 4096
# the exporter's graph passes log every step at INFO ("Replaced initializer ..."): hundreds of lines under a CLI
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._export")


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Raise the exporter's loggers to WARNING for the duration of an export."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_image_model(
    model: nn.Module, example: torch.Tensor, opset: int, dynamic_shapes: Any, output_names: list[str], **options: Any
) -> torch.onnx.ONNXProgram:
    """`torch.onnx.export` by dynamo of a model that takes one tensor, named 'image', the exporter's loggers quiet;
    `options`: torch.onnx.export's other keywords (optimize=...)."""
    with quiet_exporter():
        return torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            dynamic_shapes=dynamic_shapes,
            input_names=["image"],
            output_names=output_names,
            verbose=False,
            **options,
        )


@dataclass
class ExportReport:
    """What `export_onnx` wrote: the file, its metadata, what is dynamic, and the parity check
    ({shape: (max abs difference, max abs PyTorch output)}, on the graph with `parity.perturbed_copy`'s weights);
    `check` runs that check at other shapes."""

    path: Path
    info: ModelInfo
    note: str
    seconds: float
    parity: dict[str, tuple[float, float]]
    check: GraphCheck | None = None

    @property
    def max_diff(self) -> float:
        return max((diff for diff, _ in self.parity.values()), default=0.0)


def resolve_opset(model_name: str, spec: ExportSpec, opset: int | None) -> int:
    """The requested opset, or the family's default; raises OpsetError where exporter or model cannot use it."""
    chosen = max(DEFAULT_OPSET, spec.min_opset) if opset is None else int(opset)
    if not MIN_OPSET <= chosen <= MAX_OPSET:
        raise OpsetError(
            f"opset {chosen} is not supported: the dynamo exporter writes opsets {MIN_OPSET}-{MAX_OPSET} "
            f"(onnxruntime runs up to {MAX_OPSET})"
        )
    if chosen < spec.min_opset:
        raise OpsetError(f"'{model_name}' needs opset >= {spec.min_opset} ({spec.note}); got --opset {chosen}")
    return chosen


def dynamic_shapes(model: nn.Module, spec: ExportSpec, dynamic_size: bool) -> tuple[dict[str, Any], list[str]]:
    """torch.export `dynamic_shapes` for the model's image argument, and the names of the dynamic dimensions."""
    argument = next(iter(inspect.signature(model.forward).parameters))
    dims: dict[int, Any] = {0: Dim("batch", min=1, max=MAX_DIM)}
    if dynamic_size:
        m = spec.size_multiple
        for axis, name in ((2, "height"), (3, "width")):
            if m == 1:
                dims[axis] = Dim(name, min=spec.min_size, max=MAX_DIM)
            else:  # traced as m * k: the model's divisibility checks hold for every size the graph takes
                dims[axis] = m * Dim(f"{name}_div{m}", min=-(-spec.min_size // m), max=MAX_DIM // m)
    names = ["batch", "height", "width"] if dynamic_size else ["batch"]
    return {argument: dims}, names


def dynamic_size_problem(model_name: str, spec: ExportSpec, height: int, width: int) -> str:
    """Why the family's dynamic height/width graph cannot take `height` x `width` as its default size ('' if it can),
    naming the nearest sizes that it can."""
    if not spec.dynamic_size:
        return ""
    m, low = spec.size_multiple, spec.min_size
    if min(height, width) < low:
        return f"'{model_name}' exports with dynamic sizes from {low} px; got {height}x{width}"
    if height % m or width % m:
        side = max(height, width)
        choices = sorted({n for n in (side // m * m, -(-side // m) * m) if n >= low})
        return (
            f"'{model_name}' exports with dynamic sizes that are multiples of {m}, and {height}x{width} is not "
            f"(--img-size {' or '.join(map(str, choices))} would be)"
        )
    return ""


def export_onnx(
    model: nn.Module,
    info: ModelInfo,
    output: str | Path,
    opset: int | None = None,
    dynamic_size: bool | None = None,
    spec: ExportSpec | None = None,
    check: bool = True,
    optimize: bool = True,
) -> ExportReport:
    """Export `model` (eval mode) for inputs of `info.input_size` to `output`.

    opset: default 18 (19 where the family needs it); dynamic_size: None = wherever the family supports it (at a
    size its dynamic graph cannot take, e.g. a model trained at 112 px where the family needs multiples of 32, the
    export is static and the report's note says why); False = fixed height and width; True = dynamic or an error;
    check: run the exported graph in onnxruntime beside PyTorch, both with `parity.perturbed_copy`'s weights so
    that every block counts (`parity.graph_check`), and report the difference;
    optimize: run onnxscript's graph optimizer on the result (constant folding, dead code; about a third of the
    export time; onnxruntime optimises the graph again when it loads it).
    """
    spec = spec or spec_for(info.model_name)
    opset = resolve_opset(info.model_name, spec, opset)
    channels, height, width = info.input_size
    problem = dynamic_size_problem(info.model_name, spec, height, width)
    if dynamic_size is None:  # the family's default; a size its dynamic graph cannot take falls back to static
        dynamic_size = spec.dynamic_size and not problem
        reason = problem
    elif dynamic_size and not spec.dynamic_size:
        raise ExportError(f"'{info.model_name}' exports with fixed height and width only ({spec.note})")
    elif dynamic_size and problem:
        raise ExportError(problem)
    else:
        reason = "static size requested"
    note = (
        spec.note
        if dynamic_size or not spec.dynamic_size
        # the note always matches the metadata
        else (f"batch dynamic; height and width fixed at {height}x{width} ({reason})")
    )
    shapes, dims = dynamic_shapes(model, spec, dynamic_size)
    multiple = spec.size_multiple if dynamic_size else 1
    pad = spec.pad if dynamic_size else ""
    info = dataclasses.replace(info, dynamic=dims, size_multiple=multiple, pad=pad, opset=opset)
    # trace with at least two multiples per side: a side of exactly one multiple would pin the size (torch.export
    # specialises dimensions equal to 1); the graph still takes the exported size itself
    trace = [max(n, 2 * spec.size_multiple) if dynamic_size else n for n in (height, width)]
    example = torch.randn(2, channels, *trace)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    undo = spec.prepare(model) if spec.prepare else None
    start = time.perf_counter()
    try:
        program = export_image_model(model, example, opset, shapes, ["output"], optimize=False)
        unoptimized = program.model_proto if check else None  # its initializers still carry parameter names
        if optimize:
            with quiet_exporter():
                program.optimize()
    finally:
        if undo is not None:
            undo()
    program.model.metadata_props.update(info.to_props())
    program.model.doc_string = f"visiongates {info.task} model {info.model_name} ({note})"
    with quiet_exporter():
        program.save(output)
    seconds = time.perf_counter() - start
    checker = graph_check(unoptimized, model, info, optimize) if unoptimized is not None else None
    parity = checker.parity() if checker else {}
    log.info("exported %s to %s in %.1f s (opset %d; %s)", info.model_name, output, seconds, opset, note)
    return ExportReport(output, info, note, seconds, parity, checker)


def export_source(
    source: str,
    output: str | Path,
    opset: int | None = None,
    img_size: int | None = None,
    dynamic_size: bool | None = None,
    seed: int = 0,
    check: bool = True,
) -> ExportReport:
    """Export a registry name (weights from `seed`) or a tools/train.py checkpoint.

    img_size: export (and check) at this square size instead of the model's or checkpoint's own.
    """
    model, info = load_source(source, seed=seed)
    if img_size is not None:
        info = dataclasses.replace(info, input_size=(info.channels, img_size, img_size))
    return export_onnx(model, info, output, opset=opset, dynamic_size=dynamic_size, check=check)
