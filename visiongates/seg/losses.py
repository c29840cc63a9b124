"""Segmentation losses: cross-entropy plus the soft Dice loss (Milletari et al., V-Net, 3DV 2016, Eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["soft_dice_loss", "SegmentationLoss"]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean over images and foreground classes of 2|P.G| / (|P| + |G|), P the softmax probabilities."""
    probs = logits.float().softmax(dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum((2, 3))
    denom = probs.sum((2, 3)) + onehot.sum((2, 3))
    return 1.0 - ((2 * inter + eps) / (denom + eps)).mean()


class SegmentationLoss(nn.Module):
    """CE + dice_weight * soft Dice on the prediction, plus aux_weight * the same on each deep-supervision level."""

    def __init__(self, dice_weight: float = 1.0, aux_weight: float = 0.0) -> None:
        super().__init__()
        self.dice_weight, self.aux_weight = dice_weight, aux_weight

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target) + self.dice_weight * soft_dice_loss(logits, target)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, aux: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        loss = self.single(logits, target)
        if aux and self.aux_weight:
            loss = loss + self.aux_weight * sum(self.single(a, target) for a in aux) / len(aux)
        return loss
