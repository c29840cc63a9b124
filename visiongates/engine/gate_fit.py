"""Fit an MSViT gate to a target share with the generalized batch-shaping loss alone (no task loss, no backbone).

Havtorn et al., "MSViT", ICCVW 2023 (arXiv:2307.02321), Sec. 3.2: gBaS shapes the distribution of each region's gate
output over a batch towards a relaxed Bernoulli whose means follow a hyperprior centred on the target. Run alone it
only needs the gate's forward, so it sets the share of fine regions on real images in seconds; which regions end up
fine is then driven by the image content the gate sees, not by the task (tools/train.py trains both together).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from visiongates.losses import GeneralizedBatchShapingLoss

__all__ = ["fit_gate_to_target"]


def fit_gate_to_target(
    model: nn.Module, loader: Iterable, target: float, epochs: int = 20, lr: float = 1e-2
) -> dict[str, float]:
    """Train `model.scale_gate` (and fresh gBaS priors on the model's coarse grid) on the images of `loader`.

    loader yields (images, labels, skipped) batches of one size. Returns the final loss and the share of regions
    above the 1/2 threshold in the last epoch. The model is left in eval mode.
    """
    images = [x for x, _, _ in loader if len(x)]
    grid = model.scale_gate(images[0][:1]).shape[-2:]
    loss_fn = GeneralizedBatchShapingLoss(tuple(grid), target)
    optimizer = torch.optim.Adam([*model.scale_gate.parameters(), *loss_fn.parameters()], lr=lr)
    model.eval()
    last_loss, fine, regions = float("nan"), 0.0, 0
    for epoch in range(epochs):
        for x in images:
            logits = model.scale_gate(x)
            loss = loss_fn(torch.sigmoid(logits))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last_loss = loss.detach().item()
            if epoch == epochs - 1:
                fine += float((logits > 0).sum())
                regions += logits.numel()
    return {"loss": last_loss, "fine_share": fine / max(regions, 1)}
