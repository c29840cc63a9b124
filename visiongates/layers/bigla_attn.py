"""ViG's token mixer and block: bidirectional gated linear attention with a gated local branch.

Liao et al., "ViG: Linear-complexity Visual Sequence Learning with Gated Linear Attention" (arXiv:2405.18425,
AAAI 2025), Sec. 3 / Fig. 2; matches hustvl/ViG `GatedLinearAttention` (vig.py) and `GLA2D` (vig_h.py):

    local = DWConv3x3(x as a 2D map) [-> SiLU]                      (the "locality-aware" input, ViG-T only SiLU)
    q, k, v = Linear(local)                                          (shared by both directions)
    log a_f, log a_b = logsigmoid(Linear(Linear(local))) / 16        (low-rank gate, the only per-direction weights)
    o = RMSNorm_head(BiGLA(q, k, v, log a_f, log a_b))               (visiongates.ops.bigla)
    g = sigmoid(Linear(local))
    out = Linear([SiLU](g * o + (1 - g) * RMSNorm_head(local)))      (ViG-T only SiLU)

Tokens are [B, L, C] in row-major (H, W) order; the caller passes (H, W) for the depthwise conv.
"""

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, GluMlp, RmsNorm, register_notrace_module

from visiongates.ops.bigla import bigla

__all__ = ["BiGlaAttention", "BiGlaBlock", "BiGlaOp", "PackedSwiGLU", "swiglu_hidden"]

_XAVIER_GAIN = 2**-2.5  # the official reset_parameters gain


def swiglu_hidden(dim: int, multiple: int) -> int:
    """SwiGLU width as in ViG (from fla's GLAMLP): 2/3 of 4*dim, rounded up to `multiple` (256 plain, 32 ViG-H)."""
    hidden = int(dim * 4 * 2 / 3)
    return multiple * ((hidden + multiple - 1) // multiple)


@register_notrace_module
class BiGlaOp(nn.Module):
    """The BiGLA op (`visiongates.ops.bigla.bigla`) as a parameter-free module, so tracers keep it whole.

    The op checks shapes and picks a backend in Python: FX keeps this module as one leaf (timm's
    `register_notrace_module`) and TorchScript calls the op in Python (`torch.jit.ignore`), as timm does for its
    own data-dependent leaves; ONNX / torch.export trace through to the op's static chunked form.
    """

    def __init__(self, backend: str = "auto") -> None:
        super().__init__()
        self.backend = backend

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_fwd: torch.Tensor, g_bwd: torch.Tensor
    ) -> torch.Tensor:
        return self._bigla(q, k, v, g_fwd, g_bwd)

    @torch.jit.ignore
    def _bigla(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g_fwd: torch.Tensor, g_bwd: torch.Tensor
    ) -> torch.Tensor:
        return bigla(q, k, v, g_fwd, g_bwd, backend=self.backend)


class BiGlaAttention(nn.Module):
    """Bidirectional gated linear attention with a gated depthwise-conv branch (ViG, Sec. 3.2-3.3).

    `official_eval_numerics`: in eval mode, reproduce the evaluation path of hustvl/ViG's plain ViG
    (classification/models/vig.py `GatedLinearAttention.forward`, `not self.training` branch): its bidirectional
    kernel (`bid_fused_recurrent_gla`) already returns the mean of the two directions and the branch then divides by
    2 again (`o /= 2`) before `g_norm`. Since RMSNorm(o / 2, eps) = RMSNorm(o, 4 eps), this only raises the attention
    norm's effective epsilon from 1e-6 to 4e-6; training mode (the official training branch) is unchanged. ViG-H's
    eval branch has that division commented out, so it needs no option.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        key_ratio: float = 0.5,
        gate_rank: int = 16,
        gate_normalizer: float = 16.0,
        conv_act: bool = False,
        out_act: bool = False,
        norm_eps: float = 1e-6,
        backend: str = "auto",
        official_eval_numerics: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.num_heads = num_heads
        self.official_eval_numerics = official_eval_numerics
        self.key_dim = int(dim * key_ratio)
        if self.key_dim % num_heads or dim % num_heads:
            raise ValueError(f"dim {dim} and key dim {self.key_dim} must be divisible by num_heads {num_heads}")
        self.gate_normalizer = gate_normalizer
        self.bigla = BiGlaOp(backend)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False, **dd)
        self.conv_act = nn.SiLU() if conv_act else nn.Identity()
        self.qkv = nn.Linear(dim, 2 * self.key_dim + dim, bias=False, **dd)
        self.decay_down = nn.Linear(dim, gate_rank, bias=False, **dd)
        self.decay_up = nn.Linear(gate_rank, 2 * self.key_dim, **dd)
        self.gate = nn.Linear(dim, dim, **dd)
        self.norm_attn = RmsNorm(dim // num_heads, eps=norm_eps, **dd)
        self.norm_local = RmsNorm(dim // num_heads, eps=norm_eps, **dd)
        self.out_act = nn.SiLU() if out_act else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=False, **dd)

    def init_weights(self, xavier_linears: bool = True) -> None:
        """Official init: xavier-uniform (gain 2^-2.5) on the depthwise conv and, unless the model re-initialises its
        linears afterwards (HierViG does), on qkv, both decay projections, the output gate and the projection."""
        nn.init.xavier_uniform_(self.conv.weight, gain=_XAVIER_GAIN)
        if xavier_linears:
            for linear in (self.qkv, self.decay_down, self.decay_up, self.gate, self.proj):
                nn.init.xavier_uniform_(linear.weight, gain=_XAVIER_GAIN)
        for linear in (self.decay_up, self.gate):
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        batch, length, dim = x.shape
        heads = self.num_heads
        # the depthwise conv reads and writes channels-last views of the [B, L, C] tokens: no transposed copies
        local = self.conv(x.reshape(batch, feat_size[0], feat_size[1], dim).permute(0, 3, 1, 2))
        local = self.conv_act(local).permute(0, 2, 3, 1).reshape(batch, length, dim)  # [B, L, C]
        q, k, v = self.qkv(local).split([self.key_dim, self.key_dim, dim], dim=-1)
        log_decay = F.logsigmoid(self.decay_up(self.decay_down(local)).float()) / self.gate_normalizer
        g_fwd, g_bwd = log_decay.chunk(2, dim=-1)
        q, k, v, g_fwd, g_bwd = [t.reshape(batch, length, heads, -1).transpose(1, 2) for t in (q, k, v, g_fwd, g_bwd)]
        o = self.bigla(q, k, v, g_fwd, g_bwd).transpose(1, 2)  # [B, L, heads, dim / heads]
        if self.official_eval_numerics and not self.training:
            o = o * 0.5  # hustvl/ViG's eval branch halves the kernel's two-direction mean once more (class docstring)
        g = self.gate(local).sigmoid().reshape(batch, length, heads, -1)
        local_heads = self.norm_local(local.reshape(batch, length, heads, -1))
        mixed = torch.lerp(local_heads, self.norm_attn(o), g)  # g * o + (1 - g) * local, in one op
        return self.proj(self.out_act(mixed.reshape(batch, length, dim)))


class PackedSwiGLU(GluMlp):
    """timm's SwiGLUPacked (GluMlp with SiLU, gate half of fc1 first; same parameters and outputs) that computes
    silu(gate) * value in place in fc1's output when no gradient is recorded: two fewer [B, L, hidden / 2] buffers
    per block at inference."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        bias: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, hidden_features, act_layer=nn.SiLU, bias=bias, gate_last=False, device=device,
                         dtype=dtype)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.fc1(x).chunk(2, dim=-1)
        # without autograd no graph needs fc1's output: overwrite it
        hidden = F.silu(gate) * value if torch.is_grad_enabled() else F.silu(gate, inplace=True).mul_(value)
        return self.drop2(self.fc2(self.norm(self.drop1(hidden))))


class BiGlaBlock(nn.Module):
    """Pre-norm ViG block: x + BiGlaAttention(norm(x)), then x + SwiGLU(norm(x)) (vig.py GLABlock / vig_h.py VSSBlock).

    `norm_layer` is RMSNorm (eps 1e-6) in plain ViG and LayerNorm (eps 1e-5, i.e. the official channels-first LN2d
    over C) in ViG-H. The SwiGLU's fc1 holds the gate half first (official `gate_proj` / `fc1`), no biases.
    `attn_kwargs` go to `BiGlaAttention` (conv_act, out_act, backend, official_eval_numerics...).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        norm_layer: type[nn.Module] = RmsNorm,
        drop_path: float = 0.0,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        **attn_kwargs: Any,
    ) -> None:
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.norm1 = norm_layer(dim, **dd)
        self.attn = BiGlaAttention(dim, num_heads, **attn_kwargs, **dd)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim, **dd)
        self.mlp = PackedSwiGLU(dim, 2 * mlp_hidden, bias=False, **dd)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x), feat_size))
        return x + self.drop_path2(self.mlp(self.norm2(x)))
