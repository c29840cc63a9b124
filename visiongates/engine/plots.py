"""PNG pictures of a run: loss and validation-metric curves per epoch, and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def plot_curves(history: Sequence[dict], path: str | Path, metric: str = "top1") -> Path:
    """Train/val loss per epoch and the validation `metric` (and its EMA) per validated epoch, side by side."""
    epochs = [row["epoch"] for row in history]
    validated = [row for row in history if f"val_{metric}" in row]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    if any("val_loss" in row for row in validated):
        ax_loss.plot([r["epoch"] for r in validated], [r.get("val_loss") for r in validated], marker="o", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    name = "top-1" if metric == "top1" else metric
    x = [row["epoch"] for row in validated]
    ax_acc.plot(x, [row[f"val_{metric}"] for row in validated], marker="o", label=f"val {name}")
    if any(f"val_ema_{metric}" in row for row in validated):
        ema = [row.get(f"val_ema_{metric}", float("nan")) for row in validated]
        ax_acc.plot(x, ema, marker="o", label=f"EMA {name}")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)" if metric == "top1" else metric, title=f"validation {name}")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion(confusion: torch.Tensor, classes: Sequence[str], path: str | Path) -> Path:
    """Row-normalised confusion matrix (true class per row) with counts written in the cells."""
    counts = confusion.double()
    norm = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    if len(classes) <= 30:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(
                    j,
                    i,
                    int(counts[i, j]),
                    ha="center",
                    va="center",
                    color="white" if norm[i, j] > 0.5 else "black",
                    fontsize=8,
                )
    ax.set_title("confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
