"""Picture of MSViT's tokenization: the scale the gate chose for every region, drawn over the image.

Havtorn et al., "MSViT: Dynamic Mixed-Scale Tokenization for Vision Transformers", ICCVW 2023 (arXiv:2307.02321),
Fig. 1 / 4 style: each 2p x 2p region is outlined as one coarse token or split into its 4 fine p x p tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["scale_masks", "plot_scales"]

FINE_COLOR, COARSE_COLOR = "#ff7f0e", "#1f77b4"


@torch.no_grad()
def scale_masks(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The evaluation-time fine mask [B, Hc, Wc] (1 = fine) of an MSViT for normalised images [B, C, H, W]."""
    was_training = model.training
    model.eval()
    try:
        return model.decide_scales(images).mask.cpu()
    finally:
        model.train(was_training)


def _to_rgb(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    pixels = image.detach().cpu().float() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return pixels.clamp(0, 1).permute(1, 2, 0).numpy()


def _draw(ax, rgb: np.ndarray, mask: torch.Tensor, patch: int) -> None:
    from matplotlib.patches import Rectangle

    ax.imshow(rgb, interpolation="nearest")
    region = 2 * patch
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            y, x = i * region, j * region
            if mask[i, j] > 0.5:
                for dy in (0, patch):
                    for dx in (0, patch):
                        ax.add_patch(
                            Rectangle(
                                (x + dx - 0.5, y + dy - 0.5),
                                patch,
                                patch,
                                fill=False,
                                edgecolor=FINE_COLOR,
                                linewidth=1.2,
                            )
                        )
            else:
                ax.add_patch(
                    Rectangle(
                        (x - 0.5, y - 0.5),
                        region,
                        region,
                        facecolor=COARSE_COLOR,
                        alpha=0.25,
                        edgecolor=COARSE_COLOR,
                        linewidth=1.6,
                    )
                )
    ax.set_xticks([])
    ax.set_yticks([])


def plot_scales(
    model: nn.Module,
    images: torch.Tensor,
    path: str | Path,
    mean: Sequence[float],
    std: Sequence[float],
    captions: Sequence[str] | None = None,
    columns: int = 4,
    title: str | None = None,
) -> Path:
    """Write a PNG: every image with its regions outlined as coarse (one blue tinted box) or fine (4 orange boxes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    masks = scale_masks(model, images)
    count = images.shape[0]
    columns = min(columns, count)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.4 * columns, 2.7 * rows + 0.7), squeeze=False, layout="constrained"
    )
    for index, ax in enumerate(axes.flat):
        if index >= count:
            ax.axis("off")
            continue
        _draw(ax, _to_rgb(images[index], mean, std), masks[index], model.patch)
        share = float(masks[index].mean())
        caption = f"{captions[index]}  " if captions is not None else ""
        ax.set_title(f"{caption}fine {share:.0%}", fontsize=8)
    overall = float(masks.mean())
    fig.suptitle(
        (title or "MSViT scale per region") + f": fine share {overall:.1%} over these {count} images\n"
        "orange: 4 fine tokens (16x16); blue tint: one coarse token (32x32)",
        fontsize=9,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
