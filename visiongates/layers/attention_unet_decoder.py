"""Attention U-Net decoder over any multi-level NCHW feature list (a `features_only` timm backbone, an mm backbone).

Oktay et al., "Attention U-Net", MIDL 2018 (arXiv:1804.03999), Fig. 1-2 and the official CT networks
(ozan-oktay/Attention-Gated-Networks, `unet_CT_single_att_dsv_3D`), in 2D:
- the coarsest map feeds a gating signal Conv1x1-BN-ReLU used by the gate of the next-finer skip; every finer gate is
  driven by the decoder output one level coarser;
- attention gates on every skip except the finest (official: skip levels 2-4 of 5; with only one skip, it is gated);
- each decoder level resizes the coarser map to the skip's exact size, concatenates [gated skip, coarse] and applies
  two Conv3x3-BN-ReLU;
- deep supervision as the official code does it: a Conv1x1 classifier per decoder level, resized to the finest decoder
  level, concatenated and fused by a Conv1x1 into the prediction (the per-level logits are returned for auxiliary
  losses).
Logits come out at the finest feature level's resolution, or at `output_size` when given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .attention_gate import GATE_MODES, AttentionGate
from .unet_blocks import ConvBnReLU, UNetUpBlock, init_unet_weights, resize_to

__all__ = ["AttentionUNetDecoder", "AttentionUNetOutput", "default_gate_levels"]


class AttentionUNetOutput(NamedTuple):
    """logits [B, K, H, W]; aux_logits: per decoder level, finest first, same size as logits (empty without deep
    supervision); gates: skip level -> alpha [B, 1, h, w] at that skip's resolution."""

    logits: torch.Tensor
    aux_logits: list[torch.Tensor]
    gates: dict[int, torch.Tensor]


def default_gate_levels(num_levels: int) -> list[int]:
    """Skip levels the official U-Net gates: all but the finest (levels 1..L-2); the only skip when L = 2."""
    if num_levels < 2:
        raise ValueError(f"a U-Net decoder needs at least 2 feature levels, got {num_levels}")
    return list(range(1, num_levels - 1)) if num_levels > 2 else [0]


class AttentionUNetDecoder(nn.Module):
    """Attention-gated U-Net decoder (Oktay et al. 2018) on features ordered finest first.

    in_channels / strides: channels and reductions of the L >= 2 input maps (finest first, as timm's feature_info).
    num_classes: output channels. decoder_channels: width of each decoder level 0..L-2 (default: the skip's channels).
    gate: 'grid' (official), 'equal' (MONAI-style) or None (plain U-Net skips). gate_levels: which skips are gated.
    inter_channels: attention width per gated level (default: the skip's channels). deep_supervision: fuse a
    classifier per decoder level (official `dsv` + `final`), else one classifier on the finest level.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        strides: Sequence[int],
        num_classes: int,
        decoder_channels: Sequence[int] | None = None,
        gate: str | None = "grid",
        gate_levels: Sequence[int] | None = None,
        inter_channels: Sequence[int] | None = None,
        deep_supervision: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        in_channels, strides = list(in_channels), list(strides)
        levels = len(in_channels)
        if len(strides) != levels:
            raise ValueError(f"{levels} channel counts but {len(strides)} strides")
        if gate is not None and gate not in GATE_MODES:
            raise ValueError(f"gate must be one of {GATE_MODES} or None, got {gate!r}")
        gate_levels = sorted(default_gate_levels(levels) if gate_levels is None else gate_levels)
        if gate is None:
            gate_levels = []
        if any(not 0 <= i < levels - 1 for i in gate_levels):
            raise ValueError(f"gate_levels must lie in 0..{levels - 2} (skip levels), got {gate_levels}")
        decoder_channels = list(decoder_channels or in_channels[:-1])
        if len(decoder_channels) != levels - 1:
            raise ValueError(f"decoder_channels needs {levels - 1} entries (one per skip level)")
        inter_channels = list(inter_channels or in_channels[:-1])
        self.in_channels, self.strides, self.num_classes = in_channels, strides, num_classes
        self.decoder_channels, self.gate_mode, self.gate_levels = decoder_channels, gate, gate_levels
        self.deep_supervision = deep_supervision

        coarse = [in_channels[-1] if i == levels - 2 else decoder_channels[i + 1] for i in range(levels - 1)]
        top = levels - 2
        self.gating = ConvBnReLU(in_channels[-1], in_channels[-1], kernel_size=1, **dd) if top in gate_levels else None
        self.gates = nn.ModuleDict(
            {
                str(i): AttentionGate(
                    in_channels[i],
                    coarse[i],
                    inter_channels[i],
                    mode=gate,
                    sub_sample=max(1, round(strides[i + 1] / strides[i])),
                    **dd,
                )
                for i in gate_levels
            }
        )
        self.blocks = nn.ModuleList(
            [UNetUpBlock(in_channels[i], coarse[i], decoder_channels[i], **dd) for i in range(levels - 1)]
        )
        if deep_supervision:
            self.heads = nn.ModuleList([nn.Conv2d(c, num_classes, 1, **dd) for c in decoder_channels])
            self.fuse = nn.Conv2d(num_classes * (levels - 1), num_classes, 1, **dd)
        else:
            self.heads = nn.ModuleList([nn.Conv2d(decoder_channels[0], num_classes, 1, **dd)])
            self.fuse = None
        init_unet_weights(self)

    def forward_all(
        self, features: Sequence[torch.Tensor], output_size: tuple[int, int] | torch.Size | None = None
    ) -> AttentionUNetOutput:
        """Logits, per-level logits and gate coefficients (see AttentionUNetOutput)."""
        if len(features) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} feature maps, got {len(features)}")
        y = features[-1]
        g_top = self.gating(y) if self.gating is not None else None
        decoded: list[torch.Tensor] = [y] * (len(features) - 1)
        gates: dict[int, torch.Tensor] = {}
        for i in reversed(range(len(features) - 1)):
            skip = features[i]
            if str(i) in self.gates:
                g = g_top if i == len(features) - 2 else y
                skip, gates[i] = self.gates[str(i)](skip, g)
            y = self.blocks[i](skip, y)
            decoded[i] = y
        size = tuple(output_size) if output_size is not None else tuple(decoded[0].shape[-2:])
        aux: list[torch.Tensor] = []
        if self.fuse is not None:
            per_level = [resize_to(head(d), decoded[0].shape[-2:]) for head, d in zip(self.heads, decoded)]
            logits = self.fuse(torch.cat(per_level, dim=1))
            aux = [resize_to(p, size) for p in per_level]
        else:
            logits = self.heads[0](decoded[0])
        return AttentionUNetOutput(resize_to(logits, size), aux, gates)

    def forward(
        self, features: Sequence[torch.Tensor], output_size: tuple[int, int] | torch.Size | None = None
    ) -> torch.Tensor:
        """Logits [B, num_classes, H, W] at the finest feature resolution, or at `output_size`."""
        return self.forward_all(features, output_size).logits
