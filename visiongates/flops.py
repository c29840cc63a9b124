"""Multiply-accumulates (MACs): the one counter behind every compute figure visiongates publishes (the model
table's GMACs, `model_facts`, the benchmarks and docs).

Convention: torch's `FlopCounterMode` FLOPs / 2, i.e. the multiply-accumulates of convolutions (deformable ones
included), matrix products (linear, matmul, bmm, einsum), attention (q k^T and the weighted sum of v) and the BiGLA
op (its own formula, `visiongates.ops.bigla`). Elementwise ops, normalisation, softmax, activations, pooling and
resampling are not counted, as in fvcore and timm's model cards; a publisher that counts them ("FLOPs" of every
operation, e.g. MAXIM) reports about 2x more.

`FlopCounterMode` alone has no formula for two kernels that zoo models reach: the CPU attention kernel
(`aten._scaled_dot_product_flash_attention_for_cpu`, what `F.scaled_dot_product_attention` runs on CPU) and
`torchvision::deform_conv2d` (DAS). Without them a CPU count leaves attention out (DeiT-Ti: 1.075 instead of 1.254
GMACs) and DAS's deformable convolutions too. `count_macs` adds both, so a CPU count equals a meta-device count.

Recipe for a model's recorded GMACs: `count_model_gmacs(name)`, i.e. the model built on the meta device (no memory,
no weights), eval mode, one image at its default `input_size`, under `torch.no_grad()`;
`python tools/analysis/count_macs.py` prints it for every registered model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = ["EXTRA_FORMULAS", "count_flops", "count_macs", "count_model_gmacs", "input_size_of"]

aten = torch.ops.aten


def _sdpa_flop(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """Attention forward: q k^T and the weighted sum of v (torch's formula for the CUDA kernels)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward_flop(
    grad_shape, query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any
) -> int:
    """Attention backward (torch's formula for the CUDA kernels)."""
    return sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


def _deform_conv2d_flop(input_shape, weight_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """torchvision's deformable conv: the products of a plain conv with the same weight and output (2 per MAC; the
    bilinear sampling of the input is elementwise and not counted)."""
    return 2 * math.prod(out_shape) * math.prod(weight_shape[1:])


def _extra_formulas() -> dict[Any, Any]:
    formulas: dict[Any, Any] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_flop
        formulas[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _sdpa_backward_flop
    import torchvision  # noqa: F401  registers torch.ops.torchvision

    formulas[torch.ops.torchvision.deform_conv2d] = _deform_conv2d_flop
    return formulas


# FLOP formulas that torch's FlopCounterMode lacks, passed as its `custom_mapping` (nothing is registered globally).
EXTRA_FORMULAS = _extra_formulas()


def count_flops(model: nn.Module, *inputs: Any, extra: bool = True, **kwargs: Any) -> dict[str, int]:
    """FLOPs of one forward of `model` (no grad) per aten op, on whatever device its inputs live (meta included).
    extra=False counts with torch's formulas alone (what visiongates counted before, for comparison)."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS if extra else None) as mode:
        model(*inputs, **kwargs)
    return {str(op): flops for op, flops in mode.get_flop_counts()["Global"].items()}


def count_macs(model: nn.Module, *inputs: Any, extra: bool = True, **kwargs: Any) -> float:
    """Multiply-accumulates of one forward of `model` on `inputs` (FlopCounterMode FLOPs / 2, the module's
    convention): the same on CPU and on the meta device."""
    return sum(count_flops(model, *inputs, extra=extra, **kwargs).values()) / 2


def input_size_of(name: str) -> tuple[int, int, int]:
    """The default (C, H, W) input of a registered model (its pretrained cfg's `input_size`)."""
    import timm

    return tuple(timm.models.get_pretrained_cfg(name, allow_unregistered=False).input_size)


def count_model_gmacs(name: str, input_size: tuple[int, int, int] | None = None, **kwargs: Any) -> float:
    """GMACs of the registered model `name` on one image at `input_size` (default: its cfg's), built and run on
    the meta device: the figure `model_facts` records."""
    import timm

    model = timm.create_model(name, device="meta", **kwargs).eval()
    x = torch.empty(1, *(input_size or input_size_of(name)), device="meta")
    return count_macs(model, x) / 1e9
