"""Dice score of hard predictions (Dice 1945; the overlap the Attention U-Net paper reports)."""

from __future__ import annotations

import torch

__all__ = ["dice_per_image"]


def dice_per_image(pred: torch.Tensor, target: torch.Tensor, label: int = 1) -> torch.Tensor:
    """2|P & G| / (|P| + |G|) of class `label` per image [B]; 1 where both are empty."""
    p, g = (pred == label).flatten(1), (target == label).flatten(1)
    inter = (p & g).sum(1).double()
    total = (p.sum(1) + g.sum(1)).double()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
