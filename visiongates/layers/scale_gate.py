"""The MSViT scale gate: a light MLP per coarse region that decides "fine" (keep 4 tokens) or "coarse" (1 token).

Havtorn et al., "MSViT: Dynamic Mixed-Scale Tokenization for Vision Transformers", ICCVW 2023 (arXiv:2307.02321),
Sec. 3.1: the gate sees each coarse region on its own and emits one logit; training samples a hard decision with the
Gumbel-sigmoid (binary Concrete) relaxation and a straight-through estimator, evaluation thresholds the logit at 0
(probability 1/2). Here the MLP reads the region's full-resolution pixels (a stride-`region` convolution is its
first linear layer), so the gate can see the detail a coarse token would lose.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["GateDecision", "ScaleGate", "gumbel_sigmoid_straight_through"]


class GateDecision(NamedTuple):
    """logits, probabilities sigmoid(logits) and the hard fine mask (1 = fine), each [B, Hc, Wc].

    In training the mask is a straight-through sample: its value is 0/1, its gradient is that of the relaxed sample.
    """

    logits: torch.Tensor
    probs: torch.Tensor
    mask: torch.Tensor


def gumbel_sigmoid_straight_through(logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Hard Bernoulli(sigmoid(logits)) sample with the binary-Concrete gradient (Maddison et al. 2017; Jang et al.
    2017): soft = sigmoid((logits + L) / tau), L ~ Logistic(0, 1); returns hard + (soft - soft.detach()), exactly 0/1.
    """
    uniform = torch.rand_like(logits, dtype=torch.float32).clamp(1e-6, 1.0 - 1e-6)
    noise = (torch.log(uniform) - torch.log1p(-uniform)).to(logits.dtype)
    soft = torch.sigmoid((logits + noise) / tau)
    hard = (soft > 0.5).to(soft.dtype)
    return hard + (soft - soft.detach())


class ScaleGate(nn.Module):
    """Per-region MLP on the pixels of each `region` x `region` patch -> one logit (> 0 means "keep fine").

    Layers: Linear(in_chans * region^2 -> hidden) as a stride-`region` conv, then (depth - 1) x [GELU, Linear(hidden
    -> hidden)], GELU, Linear(hidden -> 1). The output bias starts at `init_bias` (0: a fair coin per region).
    """

    def __init__(
        self,
        in_chans: int = 3,
        region: int = 32,
        hidden: int = 64,
        depth: int = 2,
        tau: float = 1.0,
        init_bias: float = 0.0,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"gate depth must be >= 1, got {depth}")
        dd = {"device": device, "dtype": dtype}
        self.region = region
        self.tau = tau
        layers: list[nn.Module] = [nn.Conv2d(in_chans, hidden, region, stride=region, **dd)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Conv2d(hidden, hidden, 1, **dd)]
        layers += [nn.GELU(), nn.Conv2d(hidden, 1, 1, **dd)]
        self.mlp = nn.Sequential(*layers)
        self.init_bias = init_bias
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.mlp:
            if isinstance(module, nn.Conv2d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.mlp[-1].bias, self.init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, H // region, W // region] (a remainder row / column of pixels has no region)."""
        return self.mlp(x)[:, 0]

    def decide(self, x: torch.Tensor) -> GateDecision:
        """Gate logits, probabilities and the fine mask: sampled (straight-through) in training, thresholded in eval."""
        logits = self(x)
        probs = torch.sigmoid(logits)
        sampled = self.training
        mask = gumbel_sigmoid_straight_through(logits, self.tau) if sampled else (logits > 0).to(logits.dtype)
        return GateDecision(logits, probs, mask)
