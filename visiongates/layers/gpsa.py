"""Gated positional self-attention (GPSA) over any H x W token grid.

d'Ascoli et al., "ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases", ICML 2021
(arXiv:2103.10697). For head h (Eq. 5 of the paper)

    A_h = (1 - sigma(lambda_h)) * softmax(Q_h K_h^T / sqrt(d)) + sigma(lambda_h) * softmax(v_pos_h^T r_qk)

with relative offsets r_qk = (dx, dy, dx^2 + dy^2) between query q and key k (key minus query, x = column).
`v_pos_h` is the `pos_proj` linear layer (plus a bias, which the softmax ignores).

Because the score v_pos^T r = (w_x dx + w_d dx^2) + (w_y dy + w_d dy^2) splits into an x-term and a y-term, the
positional softmax over the N = H*W keys is the outer product of a softmax over columns and a softmax over rows:
P_h[(y, x), (Y, X)] = Py_h[y, Y] * Px_h[x, X]. This module never builds the [N, N, 3] offset table or the
[B, heads, N, N] positional scores that the reference code materialises per forward: it keeps one [H, H] and one
[W, W] factor per head, applies them to V as two small matmuls, and caches them per grid size while `pos_proj`
needs no gradient (eval / no_grad). With gradients flowing into `pos_proj` only the parameter-free axis offsets
are cached and the factors are recomputed each forward (they cost O(heads * (H^2 + W^2))).

The content half uses `F.scaled_dot_product_attention` when timm's fused attention is on, so at high resolution no
N x N map is materialised at all. With attention dropout in training the mixed map is built densely so dropout acts on
A_h exactly as in the paper.
"""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from timm.layers import is_exporting, use_fused_attn
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from .weight_init import trunc_normal_init

__all__ = [
    "GPSA",
    "apply_positional_attention",
    "axis_offsets",
    "dense_positional_attention",
    "head_offsets",
    "positional_attention_naive",
    "relative_offsets_2d",
    "separable_positional_attention",
]


def head_offsets(num_heads: int) -> list[tuple[float, float]]:
    """Centres (dx, dy) of the local-init Gaussians of the first k*k heads, k = floor(sqrt(num_heads)) (ConViT Sec. 3).

    Head p = i + k * j is centred at (j - c, i - c) with c the lattice centre; heads beyond k*k get no centre.
    """
    k = int(math.isqrt(num_heads))
    c = (k - 1) / 2 if k % 2 == 0 else k // 2
    return [(float(p // k - c), float(p % k - c)) for p in range(k * k)]


def axis_offsets(n: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """[n, n] offsets along one axis: entry [i, j] = j - i (key minus query)."""
    pos = torch.arange(n, device=device, dtype=dtype or torch.float32)
    return pos[None, :] - pos[:, None]


def relative_offsets_2d(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Dense [N, N, 3] table of r_qk = (dx, dy, dx^2 + dy^2) over a row-major H x W grid (naive oracle)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    dx = xs.reshape(1, -1) - xs.reshape(-1, 1)
    dy = ys.reshape(1, -1) - ys.reshape(-1, 1)
    return torch.stack((dx, dy, dx * dx + dy * dy), dim=-1)


def positional_attention_naive(
    weight: torch.Tensor, bias: torch.Tensor | None, height: int, width: int
) -> torch.Tensor:
    """Oracle: [heads, N, N] = softmax over keys of pos_proj(r_qk), as the reference implementation computes it."""
    rel = relative_offsets_2d(height, width, device=weight.device).to(weight.dtype)
    return F.linear(rel, weight, bias).permute(2, 0, 1).softmax(dim=-1)


def separable_positional_attention(
    weight: torch.Tensor, bias: torch.Tensor | None, offsets_y: torch.Tensor, offsets_x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column factors (Py [heads, H, H], Px [heads, W, W]) of the positional softmax (ConViT Eq. 5).

    `weight` is pos_proj's [heads, 3] matrix over (dx, dy, dx^2 + dy^2). The bias cancels in the softmax; it is
    added to the column scores only so that autograd still reaches it, as in the reference implementation.
    """
    w = weight[:, :, None, None]
    scores_x = w[:, 0] * offsets_x + w[:, 2] * offsets_x.square()
    scores_y = w[:, 1] * offsets_y + w[:, 2] * offsets_y.square()
    if bias is not None:
        scores_x = scores_x + bias[:, None, None]
    return scores_y.softmax(dim=-1), scores_x.softmax(dim=-1)


def dense_positional_attention(py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Expand the factors to the full [heads, N, N] positional attention (Kronecker product per head)."""
    heads, height, width = py.shape[0], py.shape[1], px.shape[1]
    dense = py[:, :, None, :, None] * px[:, None, :, None, :]
    return dense.reshape(heads, height * width, height * width)


def apply_positional_attention(
    py: torch.Tensor, px: torch.Tensor, v: torch.Tensor, feat_size: tuple[int, int]
) -> torch.Tensor:
    """Compute P_h @ V_h for v [B, heads, H*W, d] without forming P_h: mix along columns, then along rows."""
    batch, heads, num_tokens, head_dim = v.shape
    height, width = feat_size
    v = v.reshape(batch, heads, height, width, head_dim)
    v = torch.einsum("hxz,bhyzd->bhyxd", px.to(v.dtype), v)
    v = torch.einsum("hyz,bhzxd->bhyxd", py.to(v.dtype), v)
    return v.reshape(batch, heads, num_tokens, head_dim)


def _caching_allowed() -> bool:
    """Caches hold Python-side state: skip them while tracing (jit or FX), scripting, exporting or compiling."""
    if torch.jit.is_scripting() or torch.jit.is_tracing() or is_exporting() or is_fx_symbolic_tracing():
        return False
    return not torch.compiler.is_compiling()


def _grid_offsets(n: int, like: torch.Tensor) -> torch.Tensor:
    """`axis_offsets` on `like`'s device and dtype, in ops that TorchScript and FX both take."""
    pos = torch.arange(n, device=like.device, dtype=like.dtype)
    return pos[None, :] - pos[:, None]


class GPSA(nn.Module):
    """Gated positional self-attention (ConViT, d'Ascoli et al. 2021, Eq. 5) on tokens of an H x W grid.

    Parameter names and shapes match timm's / the official `GPSA` (qk, v, proj, pos_proj, gating_param), so
    their state dicts load unchanged. `forward(x, feat_size)` takes x [B, H*W, C] (grid tokens only, row-major).
    """

    fused_attn: torch.jit.Final[bool]
    max_cached_sizes: int = 8
    __jit_ignored_attributes__ = ["_offsets", "_factors"]  # eager-only caches; TorchScript recomputes the factors

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        locality_strength: float = 1.0,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.locality_strength = locality_strength
        self.fused_attn = use_fused_attn()

        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias, **dd)
        self.v = nn.Linear(dim, dim, bias=qkv_bias, **dd)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim, **dd)
        self.pos_proj = nn.Linear(3, num_heads, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gating_param = nn.Parameter(torch.ones(num_heads, **dd))

        # plain dicts, not buffers: nothing here belongs in a state dict, and keys carry device and dtype
        self._offsets: dict[tuple, torch.Tensor] = {}
        self._factors: OrderedDict[tuple, tuple[tuple, tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's ViT init (trunc-normal 0.02 weights, zero biases), then the local init."""
        for linear in (self.qk, self.v, self.proj, self.pos_proj):
            trunc_normal_init(linear)
        nn.init.ones_(self.gating_param)
        self.local_init()

    @torch.no_grad()
    def local_init(self) -> None:
        """ConViT local init: V = identity, head p's positional score alpha * -(|r - c_p|^2) + const (Sec. 3)."""
        weight = self.v.weight
        weight.copy_(torch.eye(self.dim, device=weight.device, dtype=weight.dtype))
        pos_weight = self.pos_proj.weight
        for p, (dx, dy) in enumerate(head_offsets(self.num_heads)):
            row = torch.tensor([2 * dx, 2 * dy, -1.0], dtype=pos_weight.dtype, device=pos_weight.device)
            pos_weight[p] = row * self.locality_strength
        self.clear_cache()

    def clear_cache(self) -> None:
        """Drop cached offsets and positional factors (they are rebuilt on demand)."""
        self._offsets.clear()
        self._factors.clear()

    def gate(self) -> torch.Tensor:
        """sigma(lambda_h) per head: the share of positional attention."""
        return torch.sigmoid(self.gating_param)

    def _axis_offsets(self, n: int, like: torch.Tensor) -> torch.Tensor:
        if not _caching_allowed():
            return axis_offsets(n, like.device, like.dtype)
        key = (n, like.device, like.dtype)
        offsets = self._offsets.get(key)
        if offsets is None:
            # normal (non-inference) tensors, so a cache filled under inference_mode can serve training later
            with torch.inference_mode(False), torch.no_grad():
                offsets = axis_offsets(n, like.device, like.dtype)
            self._offsets[key] = offsets
        return offsets

    def _compute_factors(self, feat_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = self.pos_proj.weight, self.pos_proj.bias
        offsets_y = self._axis_offsets(feat_size[0], weight)
        offsets_x = self._axis_offsets(feat_size[1], weight)
        return separable_positional_attention(weight, bias, offsets_y, offsets_x)

    def _uncached_factors(self, feat_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The factors recomputed from pos_proj (the static path for TorchScript and FX)."""
        weight, bias = self.pos_proj.weight, self.pos_proj.bias
        offsets_y, offsets_x = _grid_offsets(feat_size[0], weight), _grid_offsets(feat_size[1], weight)
        return separable_positional_attention(weight, bias, offsets_y, offsets_x)

    def _positional_factors(self, feat_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.jit.is_scripting():
            factors = self._uncached_factors(feat_size)
        else:
            factors = self.positional_attention(feat_size)
        return factors

    def positional_attention(self, feat_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors (Py, Px) of softmax(pos_proj(r)) for this grid; cached while pos_proj needs no gradient.

        The cache key is (H, W, device, dtype); an entry is valid while pos_proj's tensors keep their storage and
        version counter (optimizer steps, load_state_dict and .to() all change one of them).
        """
        if not _caching_allowed():
            return self._uncached_factors(feat_size)
        weight, bias = self.pos_proj.weight, self.pos_proj.bias
        if torch.is_grad_enabled() and (weight.requires_grad or bias.requires_grad):
            return self._compute_factors(feat_size)
        key = (int(feat_size[0]), int(feat_size[1]), weight.device, weight.dtype)
        state = (weight.data_ptr(), weight._version, bias.data_ptr(), bias._version)
        entry = self._factors.get(key)
        if entry is not None and entry[0] == state:
            self._factors.move_to_end(key)
            return entry[1]
        with torch.inference_mode(False), torch.no_grad():
            factors = self._compute_factors(feat_size)
        self._factors[key] = (state, factors)
        while len(self._factors) > self.max_cached_sizes:
            self._factors.popitem(last=False)
        return factors

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, num_tokens, _ = x.shape
        q, k = self.qk(x).reshape(batch, num_tokens, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        v = self.v(x).reshape(batch, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def _content_softmax(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)

    def attention_map(self, x: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        """The full mixed attention A [B, heads, N, N] of Eq. 5 (dense: for analysis and dropout in training)."""
        q, k, _ = self._qkv(x)
        return self._mixed(q, k, feat_size)

    def _mixed(self, q: torch.Tensor, k: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        gate = self.gate().view(1, -1, 1, 1).to(q.dtype)
        py, px = self._positional_factors(feat_size)
        positional = dense_positional_attention(py, px).to(q.dtype)
        attn = (1.0 - gate) * self._content_softmax(q, k) + gate * positional
        return attn / attn.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        batch, num_tokens, channels = x.shape
        torch._assert(num_tokens == feat_size[0] * feat_size[1], "GPSA expects exactly H*W grid tokens")
        q, k, v = self._qkv(x)
        if self.training and self.attn_drop.p > 0:
            out = self.attn_drop(self._mixed(q, k, feat_size)) @ v
        else:
            content = F.scaled_dot_product_attention(q, k, v) if self.fused_attn else self._content_softmax(q, k) @ v
            py, px = self._positional_factors(feat_size)
            positional = apply_positional_attention(py, px, v, feat_size)
            gate = self.gate().view(1, -1, 1, 1).to(v.dtype)
            out = content + gate * (positional - content)
        out = out.transpose(1, 2).reshape(batch, num_tokens, channels)
        return self.proj_drop(self.proj(out))
