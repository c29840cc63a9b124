"""The parts of timm's model API that every zoo family answers alike (timm's own models repeat them per class)."""

from __future__ import annotations

import torch
from torch import nn

Indices = int | list[int] | None
Levels = tuple[torch.Tensor | None, list[torch.Tensor]]


class TimmModelApi:
    """Mixed in before nn.Module: no parameter is exempt from weight decay unless `no_weight_decay_keys` names it;
    gradient checkpointing is a flag on the model and on each of its `stages` that has one; the classifier is
    `self.head`; `forward_intermediates` takes timm's arguments and leaves the levels to the family's `_levels`, in
    the formats `output_fmts` lists. A family overrides what it does otherwise."""

    no_weight_decay_keys: frozenset[str] = frozenset()
    output_fmts: tuple[str, ...] = ("NCHW",)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Indices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: the final features and the outputs of the levels `indices` picks (the last n if an
        int, all if None); only those with `intermediates_only`. `stop_early` runs no level after the last picked;
        what `norm` does, each family's `_levels` says."""
        if output_fmt not in self.output_fmts:
            raise ValueError(f"output_fmt must be {' or '.join(map(repr, self.output_fmts))}, got {output_fmt!r}")
        final, intermediates = self._levels(x, indices, norm, stop_early, output_fmt, not intermediates_only)
        return intermediates if intermediates_only else (final, intermediates)

    def _levels(
        self, x: torch.Tensor, indices: Indices, norm: bool, stop_early: bool, output_fmt: str, final: bool
    ) -> Levels:
        """(the final features if `final` else None, the picked levels' outputs in `output_fmt`)."""
        raise NotImplementedError

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return set(self.no_weight_decay_keys)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in getattr(self, "stages", ()):
            if hasattr(stage, "grad_checkpointing"):
                stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head
