"""Attention U-Net's gate coefficients over the input image, one panel per gated skip level.

Oktay et al., "Attention U-Net", MIDL 2018 (arXiv:1804.03999), Fig. 3: the attention coefficients alpha (Eq. 2) of
each gate, resampled to the image, show where the skip features are let through. Each row here: the input, alpha of
every gated level (coarse to fine) as a heat map over the grey input, the prediction and (when known) the true mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from visiongates.layers.unet_blocks import resize_to

__all__ = ["GateView", "gate_view", "plot_attention_gates"]


@dataclass
class GateView:
    """image [3, H, W] in [0, 1]; gates {skip level: alpha [H, W] resampled to the image}; prediction [H, W] (argmax);
    mask [H, W] or None; strides {skip level: its reduction}."""

    image: torch.Tensor
    gates: dict[int, torch.Tensor]
    prediction: torch.Tensor
    mask: torch.Tensor | None
    strides: dict[int, int]


@torch.no_grad()
def gate_view(
    model: nn.Module, image: torch.Tensor, normalize: nn.Module | None = None, mask: torch.Tensor | None = None
) -> GateView:
    """Run an AttentionUNet on one image [3, H, W] in [0, 1] and collect its gates (bilinear to H x W)."""
    was_training = model.training
    model.eval()
    x = image[None].to(next(model.parameters()).device)
    logits, gates = model(normalize(x) if normalize is not None else x, return_gates=True)
    model.train(was_training)
    size = image.shape[-2:]
    strides = dict(enumerate(model.decoder.strides))
    return GateView(
        image=image.cpu(),
        gates={level: resize_to(alpha.float(), size)[0, 0].cpu() for level, alpha in sorted(gates.items())},
        prediction=logits.argmax(dim=1)[0].cpu(),
        mask=None if mask is None else mask.cpu(),
        strides={level: strides[level] for level in gates},
    )


def _grey(image: torch.Tensor):
    return image.float().mean(dim=0).clamp(0, 1).numpy()


def plot_attention_gates(views: list[GateView], path: str | Path, title: str | None = None) -> Path:
    """Write a PNG with one row per view: input | alpha per gated level (coarse to fine) | prediction | mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not views:
        raise ValueError("no image to plot")
    levels = sorted(views[0].gates, reverse=True)
    if not levels:
        raise ValueError("the model has no attention gates (gate=None): nothing to overlay")
    columns = 1 + len(levels) + 1 + int(any(v.mask is not None for v in views))
    fig, axes = plt.subplots(
        len(views), columns, figsize=(2.0 * columns + 0.8, 2.0 * len(views) + 0.7), squeeze=False, layout="constrained"
    )
    image_artist = None
    for row, view in enumerate(views):
        grey = _grey(view.image)
        panels = [("input", None)] + [(f"α, skip level {lv} (/{view.strides[lv]})", view.gates[lv]) for lv in levels]
        panels.append(("prediction", view.prediction))
        if view.mask is not None:
            panels.append(("true mask", view.mask))
        for col, (name, overlay) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            if name.startswith("α"):
                image_artist = ax.imshow(overlay.numpy(), cmap="jet", vmin=0, vmax=1, alpha=0.5)
                ax.set_xlabel(f"min {float(overlay.min()):.2f}  max {float(overlay.max()):.2f}", fontsize=7)
            elif overlay is not None:
                ax.contour(
                    overlay.numpy(), levels=[0.5], colors=["lime" if name == "prediction" else "red"], linewidths=1.0
                )
            if row == 0:
                ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in axes[:, len(panels) :].flat:
        ax.axis("off")
    if image_artist is not None:
        fig.colorbar(image_artist, ax=axes, shrink=0.5, location="right", label="α")
    fig.suptitle(title or "Attention U-Net gate coefficients α (Oktay et al. 2018, Eq. 2)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
