"""The additive attention gate of Attention U-Net, in the official (grid) form and the common equal-resolution form.

Oktay et al., "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018 (arXiv:1804.03999), Eq. (1)-(2):
    q_att = psi^T ReLU(W_x^T x + W_g^T g + b_g) + b_psi,    alpha = sigma(q_att),    x_hat = alpha * x
with x the skip features and g the gating signal from the coarser decoder level.

'grid' (default; the official code's `_GridAttentionBlockND`, mode 'concatenation'): theta = Conv(k = s = sub-sample
factor, no bias) on x, so the sum is formed at the gating signal's resolution; phi = Conv1x1 (bias) on g, resampled to
theta(x); psi = Conv1x1 (bias) to one channel; sigmoid; alpha resampled (bilinear) back to x; output transform
W = Conv1x1 + BN applied to alpha * x. It is the default because it is the gate the paper's figures were measured
with; the sub-sampled sum costs 1/s^2 of the equal-resolution one.

'equal' (MONAI's `AttentionBlock` and most 2D re-implementations): theta, phi and psi are Conv1x1 + BN at the skip's
resolution (phi(g) resampled to x), no output transform: x_hat = alpha * x.

With `force_alpha` set (see `forced_gates`), alpha is that constant: alpha = 1 turns the 'equal' gate into the identity
and the 'grid' gate into its output transform W, i.e. the plain U-Net skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .unet_blocks import resize_to

__all__ = ["AttentionGate", "GATE_MODES", "forced_gates"]

GATE_MODES = ("grid", "equal")


def _conv_bn(in_chs: int, out_chs: int, dd: dict) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, **dd), nn.BatchNorm2d(out_chs, **dd))


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018, Eq. 1-2): returns (gated skip, alpha at the skip's resolution).

    in_chs: skip channels; gate_chs: gating-signal channels; inter_chs: width of the additive
    attention (default in_chs, as in the official CT networks); mode: 'grid' or 'equal'; sub_sample: theta's
    kernel and stride in 'grid' mode (2 in the official U-Nets: the gating signal is one level coarser).
    """

    def __init__(
        self,
        in_chs: int,
        gate_chs: int,
        inter_chs: int | None = None,
        mode: str = "grid",
        sub_sample: int = 2,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f"gate mode must be one of {GATE_MODES}, got {mode!r}")
        dd = {"device": device, "dtype": dtype}
        inter = inter_chs or in_chs
        self.mode = mode
        self.sub_sample = sub_sample if mode == "grid" else 1
        self.force_alpha: float | None = None
        if mode == "grid":
            self.theta = nn.Conv2d(in_chs, inter, self.sub_sample, stride=self.sub_sample, bias=False, **dd)
            self.phi = nn.Conv2d(gate_chs, inter, 1, bias=True, **dd)
            self.psi = nn.Conv2d(inter, 1, 1, bias=True, **dd)
            self.transform = _conv_bn(in_chs, in_chs, dd)  # the output transform W
        else:
            self.theta = _conv_bn(in_chs, inter, dd)
            self.phi = _conv_bn(gate_chs, inter, dd)
            self.psi = _conv_bn(inter, 1, dd)
            self.transform = nn.Identity()

    def attention(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """alpha = sigma(psi(ReLU(theta(x) + phi(g)))) [B, 1, H, W], resampled to x's size (Eq. 1)."""
        if self.force_alpha is not None:
            return x.new_full((x.shape[0], 1, *x.shape[-2:]), float(self.force_alpha))
        s = self.sub_sample
        pad_h, pad_w = -x.shape[-2] % s, -x.shape[-1] % s
        x_in = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x  # theta sees every pixel
        theta_x = self.theta(x_in)
        phi_g = resize_to(self.phi(g), theta_x.shape[-2:])
        alpha = torch.sigmoid(self.psi(F.relu(theta_x + phi_g)))
        # back onto theta's grid of s x s cells, then drop the padded border
        return resize_to(alpha, x_in.shape[-2:])[..., : x.shape[-2], : x.shape[-1]]

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.attention(x, g)
        return self.transform(alpha * x), alpha


@contextmanager
def forced_gates(module: nn.Module, value: float = 1.0) -> Iterator[nn.Module]:
    """Within the block every AttentionGate of `module` uses alpha = `value` (restored afterwards)."""
    gates = [m for m in module.modules() if isinstance(m, AttentionGate)]
    saved = [g.force_alpha for g in gates]
    for g in gates:
        g.force_alpha = value
    try:
        yield module
    finally:
        for g, old in zip(gates, saved):
            g.force_alpha = old
