"""Classification metrics from a confusion matrix: top-1, per-class accuracy; top-k counted on the fly.

Top-k is reported only where it says something: for k < number of classes (top-5 of 5 classes is always 100%).
Training logs (`val_top5`) and tools/eval.py follow this one rule.
"""

from __future__ import annotations

import torch


class ClassificationMeter:
    """Accumulates loss, top-1/top-k hits and the confusion matrix over batches (summable across ranks).

    topk: counted only when below num_classes (`self.topk` is None otherwise and the summary has no top-k entry).
    """

    def __init__(self, num_classes: int, topk: int = 5) -> None:
        self.num_classes = num_classes
        self.topk = topk if 1 < topk < num_classes else None
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.topk_hits = torch.zeros((), dtype=torch.long)
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.gate_counts = torch.zeros(2, dtype=torch.float64)  # regions kept fine, regions seen (gated models)

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        logits, labels = logits.detach().float().cpu(), labels.cpu()
        preds = logits.argmax(dim=1)
        self.confusion += torch.bincount(labels * self.num_classes + preds, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )
        if self.topk is not None:
            top = logits.topk(self.topk, dim=1).indices
            self.topk_hits += (top == labels[:, None]).any(dim=1).sum()
        if loss is not None:
            self.loss_sum += float(loss) * len(labels)

    def update_gate(self, fine_mask: torch.Tensor) -> None:
        """Count a gated model's decisions for one batch (MSViT: [B, Hc, Wc], 1 = region kept fine)."""
        self.gate_counts += torch.tensor([float(fine_mask.detach().sum()), fine_mask.numel()], dtype=torch.float64)

    def all_reduce(self) -> None:
        """Sum the counts over the ranks of a torch.distributed group."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for tensor in (self.confusion, self.topk_hits, self.loss_sum, self.gate_counts):
                dist.all_reduce(tensor)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def summary(self) -> dict[str, float]:
        """loss, top1, top-k (%, where k < classes) and, for gated models, fine_share: the share of regions kept
        fine."""
        n = max(self.count, 1)
        out = {"loss": float(self.loss_sum) / n, "top1": 100.0 * float(self.confusion.diagonal().sum()) / n}
        if self.topk is not None:
            out[f"top{self.topk}"] = 100.0 * float(self.topk_hits) / n
        if self.gate_counts[1] > 0:
            out["fine_share"] = float(self.gate_counts[0] / self.gate_counts[1])
        return out

    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(dim=1).clamp(min=1)
        return (100.0 * self.confusion.diagonal() / totals).tolist()
