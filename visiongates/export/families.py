"""What each model family supports when exported to ONNX: the opsets, which input dimensions stay dynamic, and
any switch the model needs before tracing. One table, matched by model name (first match wins); one entry per
architecture (variants of an entry differ only in depth and width).

Every family exports through torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`, torch.export then
onnxscript): it is the only one that handles the whole zoo. The TorchScript exporter fails on BiGLA's chunked
path (shape arithmetic on traced tensors), on ConViT's and MAXIM's antialiased resizes, and cannot emit
deformable convolution; it is not offered.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

# The dynamo exporter translates at opset 18 (torchlib's own) and converts to the requested version with the ONNX
# version converter; 18 and later are reliable, earlier versions are refused rather than half-converted.
DEFAULT_OPSET = 18
MIN_OPSET = 18
MAX_OPSET = 23  # the highest ai.onnx opset onnxruntime 1.32 runs


@dataclass(frozen=True)
class ExportSpec:
    """How one family exports.

    min_opset: lowest opset the family's ops exist in; dynamic_size: height and width are dynamic in the graph
    (batch always is); size_multiple: dynamic H and W are multiples of this (traced as such, checked at
    inference); pad: 'reflect' if inference pads whole images to size_multiple by reflection and crops the
    output back (the model's own scheme, done outside the graph), '' to resize them; min_size: smallest dynamic
    H/W; prepare: called on the model before tracing (e.g. switch to a static-shape path), returns a callable
    that undoes it; note: what is dynamic, in words.
    """

    min_opset: int = MIN_OPSET
    dynamic_size: bool = True
    size_multiple: int = 1
    pad: str = ""
    min_size: int = 32
    prepare: Callable[[nn.Module], Callable[[], None]] | None = None
    note: str = "batch, height and width dynamic"


def _msvit_masked(model: nn.Module) -> Callable[[], None]:
    """MSViT: trace the masked token path (one slot per fine cell, static shapes), then restore the old path."""
    old = model.token_path
    model.set_token_path("masked")
    return lambda: model.set_token_path(old)


FAMILY_SPECS: list[tuple[str, ExportSpec]] = [
    (
        "das_resnet*",
        ExportSpec(
            min_opset=19,
            size_multiple=32,
            note="batch, height and width dynamic; deformable conv as ONNX DeformConv (opset >= 19)",
        ),
    ),
    ("cbam_resnet*", ExportSpec(size_multiple=32)),
    ("seresnet*", ExportSpec(size_multiple=32)),
    ("gpsa_convit_*", ExportSpec(size_multiple=16, note="batch, height and width (multiples of 16) dynamic")),
    (
        "vig_gla_h_*",
        ExportSpec(  # hierarchical ViG: its own entry, so tests treat it as its own architecture
            size_multiple=32, note="batch, height and width (multiples of 32) dynamic; BiGLA traced for any token count"
        ),
    ),
    (
        "vig_gla_*",
        ExportSpec(
            size_multiple=16,
            note="batch, height and width (multiples of 16) dynamic; BiGLA traced for any token count, the position "
            "embedding resized in the graph",
        ),
    ),
    (
        "maxim_*",
        ExportSpec(
            size_multiple=64,
            pad="reflect",
            min_size=64,
            note="batch, height and width (multiples of 64) dynamic; other sizes reflect-padded to 64 around the graph "
            "as MAXIM's run_eval.py does",
        ),
    ),
    ("attention_unet*", ExportSpec(size_multiple=32)),
    (
        "msvit_*",
        ExportSpec(
            size_multiple=32,
            prepare=_msvit_masked,
            note="batch, height and width (multiples of 32) dynamic; masked token path (static token count per size)",
        ),
    ),
]

FALLBACK_SPEC = ExportSpec(dynamic_size=False, note="batch dynamic; height and width fixed (not a visiongates family)")


def family_of(model_name: str) -> str | None:
    """The FAMILY_SPECS pattern `model_name` matches (None outside the table)."""
    return next((pattern for pattern, _ in FAMILY_SPECS if fnmatch.fnmatchcase(model_name, pattern)), None)


def spec_for(model_name: str) -> ExportSpec:
    """The export spec of `model_name`'s family (a static-size fallback for models outside the table)."""
    return dict(FAMILY_SPECS).get(family_of(model_name), FALLBACK_SPEC)
