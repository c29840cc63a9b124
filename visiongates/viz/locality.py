"""Locality picture of a ConViT: each GPSA head's positional attention around one query, and its gate.

d'Ascoli et al., "ConViT", ICML 2021 (arXiv:2103.10697), Fig. 5-6: per layer and head, the positional attention
softmax(v_pos^T r) around a query patch (Eq. 5) and the gate sigma(lambda_h) that weighs it against content attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from visiongates.layers.gpsa import GPSA

__all__ = ["LocalityMaps", "locality_maps", "plot_locality"]


@dataclass
class LocalityMaps:
    """maps [layers, heads, H, W] (sum 1 per head), gates [layers, heads], distances [layers, heads] in patches."""

    layer_names: list[str]
    maps: torch.Tensor
    gates: torch.Tensor
    distances: torch.Tensor
    query: tuple[int, int]


@torch.no_grad()
def locality_maps(
    model: nn.Module, grid: tuple[int, int] = (14, 14), query: tuple[int, int] | None = None
) -> LocalityMaps:
    """Positional attention of every GPSA layer of `model` for one query on an H x W grid (default: the centre)."""
    height, width = grid
    qy, qx = query if query is not None else (height // 2, width // 2)
    ys = torch.arange(height, dtype=torch.float32)[:, None] - qy
    xs = torch.arange(width, dtype=torch.float32)[None, :] - qx
    dist = (ys.square() + xs.square()).sqrt()
    names, maps, gates = [], [], []
    for name, module in model.named_modules():
        if isinstance(module, GPSA):
            py, px = module.positional_attention(grid)
            maps.append((py[:, qy, :, None] * px[:, qx, None, :]).float().cpu())
            gates.append(module.gate().float().cpu())
            names.append(name)
    if not maps:
        raise ValueError("the model has no GPSA layer")
    maps_t = torch.stack(maps)
    return LocalityMaps(names, maps_t, torch.stack(gates), (maps_t * dist).sum((-2, -1)), (qy, qx))


def plot_locality(
    model: nn.Module,
    path: str | Path,
    grid: tuple[int, int] = (14, 14),
    query: tuple[int, int] | None = None,
    window: int | None = 9,
    title: str | None = None,
) -> Path:
    """Write a PNG: one column per GPSA layer, one row per head (maps cropped to `window` around the query)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = locality_maps(model, grid, query)
    num_layers, num_heads, height, width = data.maps.shape
    qy, qx = data.query
    if window is not None:
        half = window // 2
        y0, y1 = max(qy - half, 0), min(qy + half + 1, height)
        x0, x1 = max(qx - half, 0), min(qx + half + 1, width)
    else:
        y0, y1, x0, x1 = 0, height, 0, width
    panel, gap_w, gap_h, header, left = 1.2, 0.2, 0.3, 1.0, 0.45  # inches
    fig_w = left + num_layers * (panel + gap_w)
    fig_h = header + num_heads * (panel + gap_h)
    fig, axes = plt.subplots(num_heads, num_layers, figsize=(fig_w, fig_h), squeeze=False)
    fig.subplots_adjust(
        left=left / fig_w,
        right=1.0 - gap_w / fig_w,
        top=1.0 - header / fig_h,
        bottom=gap_h / 2 / fig_h,
        wspace=gap_w / panel,
        hspace=gap_h / panel,
    )
    extent = (x0 - qx - 0.5, x1 - qx - 0.5, y1 - qy - 0.5, y0 - qy - 0.5)  # axes in offsets from the query
    for layer in range(num_layers):
        for head in range(num_heads):
            ax = axes[head, layer]
            ax.imshow(data.maps[layer, head, y0:y1, x0:x1].numpy(), cmap="viridis", vmin=0.0, extent=extent)
            ax.plot(0, 0, marker="+", color="red", markersize=7, mew=1.2)
            gate, dist = data.gates[layer, head].item(), data.distances[layer, head].item()
            ax.set_title(f"σ={gate:.2f} d={dist:.1f}", fontsize=7, pad=2)
            ax.set_xticks([])
            ax.set_yticks([])
            if head == 0:
                ax.annotate(
                    data.layer_names[layer].replace(".attn", ""),
                    (0.5, 1.2),
                    xycoords="axes fraction",
                    ha="center",
                    fontsize=8,
                    fontweight="bold",
                )
            if layer == 0:
                ax.set_ylabel(f"head {head}", fontsize=8)
    fig.suptitle(
        (title or "GPSA positional attention") + f": query (y={qy}, x={qx}) on a {height}x{width} grid, "
        f"{x1 - x0}x{y1 - y0} window\nσ = gate σ(λ), the share of positional attention;  "
        "d = mean positional-attention distance (patches);  red + = query",
        fontsize=9,
        y=1.0 - 0.12 / fig_h,
        va="top",
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
