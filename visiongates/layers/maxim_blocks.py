"""Blocks of MAXIM: Tu et al., "MAXIM: Multi-Axis MLP for Image Processing", CVPR 2022 (arXiv:2201.02973).

Every block takes and returns channels-last tensors (B, H, W, C), the layout of the official Flax code
(google-research/maxim, maxim/models/maxim.py): most of the work is Dense layers over channels or tokens.
Convolutions run on a permuted (channels-last strided) NCHW view, so they add no copies. The settings that every
block of a model shares (widths, slope, bias, dropout, activation, eps) come in one `MaximBlockCfg`.

Initialisation follows the official code: Dense layers of the gMLP parts draw N(0, 0.02), the gating-weight Dense
layers of the cross-gating block start with biases of 1, every other Dense and Conv is LeCun-normal with zero bias.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import Mlp, SEModule, lecun_normal_
from torch import nn

__all__ = [
    "ConvNhwc",
    "ConvTransposeNhwc",
    "dense",
    "resize_nhwc",
    "split_tokens",
    "merge_tokens",
    "mix_tokens",
    "MaximBlockCfg",
    "SpatialGatingUnit",
    "GmlpLayer",
    "MultiAxisGmlpBlock",
    "RCAB",
    "RDCAB",
    "SpatialGatingWeights",
    "CrossGatingBlock",
    "EncoderBlock",
    "DecoderBlock",
    "BottleneckBlock",
    "UpSampleRatio",
    "MultiScaleFusion",
    "SAM",
    "OutputConv",
]

Size2 = tuple[int, int]


def dense(
    in_features: int,
    out_features: int,
    bias: bool = True,
    init: str = "normal",
    bias_init: float = 0.0,
    device=None,
    dtype=None,
) -> nn.Linear:
    """nn.Linear initialised like a Flax `nn.Dense`: init 'normal' is N(0, 0.02), 'lecun' is LeCun-normal."""
    layer = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
    if init == "normal":
        nn.init.normal_(layer.weight, std=0.02)
    else:
        lecun_normal_(layer.weight)
    if layer.bias is not None:
        nn.init.constant_(layer.bias, bias_init)
    return layer


class ConvNhwc(nn.Conv2d):
    """Conv2d on (B, H, W, C) tensors, LeCun-normal init: Flax `nn.Conv` with 'SAME' padding for the sizes used."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        # 'SAME' padding of Flax: symmetric (k - s) / 2 for the kernels used here (1x1, 3x3, 4x4 stride 2).
        super().__init__(
            in_chs, out_chs, kernel_size, stride, (kernel_size - stride) // 2, bias=bias, device=device, dtype=dtype
        )
        lecun_normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nn.Conv2d.forward's own call (TorchScript cannot compile super().forward)
        return self._conv_forward(x.permute(0, 3, 1, 2), self.weight, self.bias).permute(0, 2, 3, 1)


class ConvTransposeNhwc(nn.ConvTranspose2d):
    """2x2 stride-2 transposed conv on (B, H, W, C) tensors (Flax `nn.ConvTranspose`, kernel 2, stride 2, 'SAME').

    Flax applies its kernel without the spatial flip of a true transposed convolution: a Flax kernel `k[h, w, i, o]`
    equals this layer's `weight[i, o, 1 - h, 1 - w]` (see visiongates.models.maxim_flax).
    """

    def __init__(self, in_chs: int, out_chs: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_chs, out_chs, 2, 2, bias=bias, device=device, dtype=dtype)
        lecun_normal_(self.weight.transpose(0, 1))  # fan-in over (in, kh, kw), as Flax counts it
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nn.ConvTranspose2d.forward without an output_size (TorchScript cannot compile super().forward)
        y = F.conv_transpose2d(
            x.permute(0, 3, 1, 2),
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )
        return y.permute(0, 2, 3, 1)


def resize_nhwc(x: torch.Tensor, size: Size2, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of a (B, H, W, C) tensor with half-pixel centres.

    With `antialias=True` a downscale uses a triangle kernel widened by the scale, as `jax.image.resize(...,
    'bilinear')` does by default; upscaling is plain bilinear either way. A resize to the same size returns the
    same values (weights 1 and 0; no shortcut on the size, which FX tracing could not evaluate).
    """
    y = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return y.permute(0, 2, 3, 1)


def split_tokens(x: torch.Tensor, size: Size2, axis: str) -> torch.Tensor:
    """Move a token axis of a (B, H, W, C) tensor last (MAXIM Sec. 3.2, multi-axis gating).

    axis='grid': `size` is the (gh, gw) grid; tokens are the gh*gw cells at equal offsets inside the
    (H/gh, W/gw) windows, so mixing them is global and dilated: returns (B, H/gh, W/gw, C, gh*gw). axis='block':
    `size` is the (fh, fw) window; tokens are the fh*fw pixels of one window, so mixing is local: returns
    (B, H/fh, W/fw, C, fh*fw). Token order is row-major, as in the official `block_images_einops`
    ("n (gh fh) (gw fw) c -> n (gh gw) (fh fw) c").
    """
    b, h, w, c = x.shape
    if axis == "grid":
        gh, gw = size
        fh, fw = h // gh, w // gw
        return x.reshape(b, gh, fh, gw, fw, c).permute(0, 2, 4, 5, 1, 3).reshape(b, fh, fw, c, gh * gw)
    if axis == "block":
        fh, fw = size
        gh, gw = h // fh, w // fw
        return x.reshape(b, gh, fh, gw, fw, c).permute(0, 1, 3, 5, 2, 4).reshape(b, gh, gw, c, fh * fw)
    raise ValueError(f"axis must be 'grid' or 'block', got '{axis}'")


def merge_tokens(x: torch.Tensor, size: Size2, axis: str) -> torch.Tensor:
    """The inverse of `split_tokens`: back to (B, H, W, C)."""
    b, p, q, c, _ = x.shape
    if axis == "grid":  # (p, q) = (fh, fw)
        gh, gw = size
        return x.reshape(b, p, q, c, gh, gw).permute(0, 4, 1, 5, 2, 3).reshape(b, gh * p, gw * q, c)
    if axis == "block":  # (p, q) = (gh, gw)
        fh, fw = size
        return x.reshape(b, p, q, c, fh, fw).permute(0, 1, 4, 2, 5, 3).reshape(b, p * fh, q * fw, c)
    raise ValueError(f"axis must be 'grid' or 'block', got '{axis}'")


def mix_tokens(x: torch.Tensor, proj: nn.Module, size: Size2, axis: str) -> torch.Tensor:
    """Apply `proj` along a token axis of a (B, H, W, C) tensor (see `split_tokens`). The blocks call the two
    halves around their own Dense layer instead: TorchScript cannot pass a module to a function."""
    return merge_tokens(proj(split_tokens(x, size, axis)), size, axis)


@dataclass(frozen=True)
class MaximBlockCfg:
    """Settings that every block of one MAXIM model shares (attributes the official Flax modules pass down)."""

    num_groups: int = 2  # (MAB, RCAB / RDCAB) pairs of an encoder, decoder or bottleneck block
    block_gmlp_factor: int = 2  # width factors of the block / grid gMLP layers and of the MAB input projection
    grid_gmlp_factor: int = 2
    input_proj_factor: int = 2  # also of the cross-gating blocks' gating weights
    channels_reduction: int = 4  # channel attention of the RCAB / RDCAB
    lrelu_slope: float = 0.2  # the RCAB's LeakyReLU
    bias: bool = True  # every conv and Dense layer
    drop: float = 0.0  # dropout of the gMLP and cross-gating blocks
    act_layer: type[nn.Module] = nn.GELU
    norm_eps: float = 1e-6
    antialias: bool = True  # antialiased bilinear downscaling in the multi-level fusions


class SpatialGatingUnit(nn.Module):
    """gMLP spatial gating unit over the grid or block axis: split (u, v); return u * (W LN(v) + b + 1)."""

    def __init__(self, dim: int, size: Size2, axis: str, cfg: MaximBlockCfg, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.size, self.axis = tuple(size), axis
        self.norm = nn.LayerNorm(dim // 2, eps=cfg.norm_eps, **dd)
        tokens = self.size[0] * self.size[1]
        self.proj = dense(tokens, tokens, cfg.bias, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)
        v = merge_tokens(self.proj(split_tokens(self.norm(v), self.size, self.axis)), self.size, self.axis)
        return u * (v + 1.0)


class GmlpLayer(nn.Module):
    """Residual gMLP layer on one axis (official GridGmlpLayer / BlockGmlpLayer): x + Dense(SGU(GELU(Dense(LN x))))."""

    def __init__(self, dim: int, size: Size2, axis: str, factor: int, cfg: MaximBlockCfg, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        hidden = dim * factor
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps, **dd)
        self.in_proj = dense(dim, hidden, cfg.bias, **dd)
        self.act = cfg.act_layer()
        self.gate = SpatialGatingUnit(hidden, size, axis, cfg, **dd)
        self.out_proj = dense(hidden // 2, dim, cfg.bias, **dd)
        self.drop = nn.Dropout(cfg.drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.act(self.in_proj(self.norm(x))))
        return x + self.drop(self.out_proj(y))


class MultiAxisGmlpBlock(nn.Module):
    """Multi-axis gated MLP block (MAXIM Fig. 3a): LN, Dense(2C), GELU, split into a global grid-gMLP half and a
    local block-gMLP half, concat, Dense(C), residual (official ResidualSplitHeadMultiAxisGmlpLayer)."""

    def __init__(self, dim: int, block_size: Size2, grid_size: Size2, cfg: MaximBlockCfg, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        hidden = dim * cfg.input_proj_factor
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps, **dd)
        self.in_proj = dense(dim, hidden, cfg.bias, **dd)
        self.act = cfg.act_layer()
        self.grid = GmlpLayer(hidden // 2, grid_size, "grid", cfg.grid_gmlp_factor, cfg, **dd)
        self.block = GmlpLayer(hidden // 2, block_size, "block", cfg.block_gmlp_factor, cfg, **dd)
        self.out_proj = dense(hidden, dim, cfg.bias, **dd)
        self.drop = nn.Dropout(cfg.drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = self.act(self.in_proj(self.norm(x))).chunk(2, dim=-1)
        y = torch.cat([self.grid(u), self.block(v)], dim=-1)
        return x + self.drop(self.out_proj(y))


def _channel_attention(dim: int, reduction: int, bias: bool, dd: dict) -> SEModule:
    """Squeeze-excitation of the official CALayer: mean, Conv1x1(C/r), ReLU, Conv1x1(C), sigmoid."""
    se = SEModule(dim, rd_channels=dim // reduction, bias=bias, act_layer=nn.ReLU, **dd)
    for conv in (se.fc1, se.fc2):
        lecun_normal_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    return se


class RCAB(nn.Module):
    """Residual channel attention block: x + CA(Conv3(LeakyReLU(Conv3(LN x)))) (MAXIM Sec. 3.3)."""

    def __init__(self, dim: int, cfg: MaximBlockCfg, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps, **dd)
        self.conv1 = ConvNhwc(dim, dim, 3, bias=cfg.bias, **dd)
        self.act = nn.LeakyReLU(cfg.lrelu_slope)
        self.conv2 = ConvNhwc(dim, dim, 3, bias=cfg.bias, **dd)
        self.ca = _channel_attention(dim, cfg.channels_reduction, cfg.bias, dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(self.norm(x))))
        return x + self.ca(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class RDCAB(nn.Module):
    """Residual dense channel attention block of the bottleneck: x + CA(MLP(LN x)) (official: no dropout here)."""

    def __init__(self, dim: int, cfg: MaximBlockCfg, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps, **dd)
        self.mlp = Mlp(dim, dim, act_layer=cfg.act_layer, bias=cfg.bias, **dd)
        for fc in (self.mlp.fc1, self.mlp.fc2):
            nn.init.normal_(fc.weight, std=0.02)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)
        self.ca = _channel_attention(dim, cfg.channels_reduction, cfg.bias, dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(x))
        return x + self.ca(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class SpatialGatingWeights(nn.Module):
    """Gating weights of the cross-gating block (official GetSpatialGatingWeights): LN, Dense(2C), GELU, split;
    grid Dense on one half, block Dense on the other (both with biases initialised to 1), concat, Dense(C)."""

    def __init__(self, dim: int, block_size: Size2, grid_size: Size2, cfg: MaximBlockCfg, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        hidden = dim * cfg.input_proj_factor
        self.block_size, self.grid_size = tuple(block_size), tuple(grid_size)
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps, **dd)
        self.in_proj = dense(dim, hidden, cfg.bias, init="lecun", **dd)
        self.act = cfg.act_layer()
        grid_tokens, block_tokens = self.grid_size[0] * self.grid_size[1], self.block_size[0] * self.block_size[1]
        self.grid_proj = dense(grid_tokens, grid_tokens, cfg.bias, bias_init=1.0, **dd)
        self.block_proj = dense(block_tokens, block_tokens, cfg.bias, bias_init=1.0, **dd)
        self.out_proj = dense(hidden, dim, cfg.bias, init="lecun", **dd)
        self.drop = nn.Dropout(cfg.drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = self.act(self.in_proj(self.norm(x))).chunk(2, dim=-1)
        u = merge_tokens(self.grid_proj(split_tokens(u, self.grid_size, "grid")), self.grid_size, "grid")
        v = merge_tokens(self.block_proj(split_tokens(v, self.block_size, "block")), self.block_size, "block")
        return self.drop(self.out_proj(torch.cat([u, v], dim=-1)))


class CrossGatingBlock(nn.Module):
    """Cross-gating MLP block (MAXIM Fig. 3b): x and y are projected, each yields multi-axis gating weights that
    gate the other. Returns (x + y' + x_shortcut, y') with y' = Dense(y * G(x)) + y_shortcut."""

    def __init__(
        self,
        x_chs: int,
        y_chs: int,
        dim: int,
        block_size: Size2,
        grid_size: Size2,
        cfg: MaximBlockCfg,
        upsample_y: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        bias = cfg.bias
        self.up = ConvTransposeNhwc(y_chs, dim, bias, **dd) if upsample_y else None
        self.conv_x = ConvNhwc(x_chs, dim, 1, bias=bias, **dd)
        self.conv_y = ConvNhwc(dim if upsample_y else y_chs, dim, 1, bias=bias, **dd)
        self.norm_x = nn.LayerNorm(dim, eps=cfg.norm_eps, **dd)
        self.in_proj_x = dense(dim, dim, bias, init="lecun", **dd)
        self.gate_x = SpatialGatingWeights(dim, block_size, grid_size, cfg, **dd)
        self.norm_y = nn.LayerNorm(dim, eps=cfg.norm_eps, **dd)
        self.in_proj_y = dense(dim, dim, bias, init="lecun", **dd)
        self.gate_y = SpatialGatingWeights(dim, block_size, grid_size, cfg, **dd)
        self.out_proj_y = dense(dim, dim, bias, init="lecun", **dd)
        self.out_proj_x = dense(dim, dim, bias, init="lecun", **dd)
        self.act = cfg.act_layer()
        self.drop = nn.Dropout(cfg.drop)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.up is not None:
            y = self.up(y)
        x = shortcut_x = self.conv_x(x)
        y = shortcut_y = self.conv_y(y)
        x = self.act(self.in_proj_x(self.norm_x(x)))
        y = self.act(self.in_proj_y(self.norm_y(y)))
        gx, gy = self.gate_x(x), self.gate_y(y)
        y = self.drop(self.out_proj_y(y * gx)) + shortcut_y
        x = self.drop(self.out_proj_x(x * gy)) + y + shortcut_x
        return x, y


def _groups(cab: str, dim: int, block_size: Size2, grid_size: Size2, cfg: MaximBlockCfg, dd: dict) -> nn.Sequential:
    """The `cfg.num_groups` (MAB, channel attention) pairs of a block, keyed `<g>.mab` with `<g>.rcab` (cab 'rcab':
    encoder and decoder blocks) or `<g>.rdcab` (cab 'rdcab': bottleneck blocks), the names maxim_flax maps."""
    cab_type = RCAB if cab == "rcab" else RDCAB
    groups = []
    for _ in range(cfg.num_groups):
        mab = MultiAxisGmlpBlock(dim, block_size, grid_size, cfg, **dd)
        groups.append(nn.Sequential(OrderedDict([("mab", mab), (cab, cab_type(dim, cfg, **dd))])))
    return nn.Sequential(*groups)


class EncoderBlock(nn.Module):
    """UNet encoder block (official UNetEncoderBlock): concat skip, Conv1x1, `num_groups` x (MAB, RCAB), long
    residual, optional cross-gating with the previous stage's features. `down` (4x4 stride-2 conv) is applied by
    the caller, which keeps the full-resolution output as the skip feature."""

    def __init__(
        self,
        in_chs: int,
        dim: int,
        block_size: Size2,
        grid_size: Size2,
        cfg: MaximBlockCfg,
        downsample: bool = True,
        cross_gating: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv_in = ConvNhwc(in_chs, dim, 1, bias=cfg.bias, **dd)
        self.blocks = _groups("rcab", dim, block_size, grid_size, cfg, dd)
        self.cross_gate = (
            CrossGatingBlock(dim, dim, dim, block_size, grid_size, cfg, upsample_y=False, **dd)
            if cross_gating
            else None
        )
        self.down = ConvNhwc(dim, dim, 4, stride=2, bias=cfg.bias, **dd) if downsample else None

    def forward(
        self,
        x: torch.Tensor,
        skip: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if skip is not None:
            x = torch.cat([x, skip], dim=-1)
        x = self.conv_in(x)
        x = self.blocks(x) + x
        if self.cross_gate is not None and cond is not None:
            x, _ = self.cross_gate(x, cond)
        return x


class DecoderBlock(nn.Module):
    """UNet decoder block (official UNetDecoderBlock): 2x2 transposed-conv upsampling, then an encoder block
    (without downsampling) on the concatenation with the fused skip signal."""

    def __init__(
        self,
        in_chs: int,
        skip_chs: int,
        dim: int,
        block_size: Size2,
        grid_size: Size2,
        cfg: MaximBlockCfg,
        device=None,
        dtype=None,
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.up = ConvTransposeNhwc(in_chs, dim, cfg.bias, **dd)
        self.block = EncoderBlock(dim + skip_chs, dim, block_size, grid_size, cfg, downsample=False, **dd)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(self.up(x), skip)


class BottleneckBlock(nn.Module):
    """Global bottleneck block (official BottleneckBlock): Conv1x1, `num_groups` x (MAB, RDCAB), long residual."""

    def __init__(
        self, in_chs: int, dim: int, block_size: Size2, grid_size: Size2, cfg: MaximBlockCfg, device=None, dtype=None
    ):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.input_proj = ConvNhwc(in_chs, dim, 1, bias=cfg.bias, **dd)
        self.blocks = _groups("rdcab", dim, block_size, grid_size, cfg, dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(x)
        return self.blocks(x) + x


class UpSampleRatio(nn.Module):
    """Resize by 2**scale_exp (bilinear) and Conv1x1 (official UpSampleRatio).

    Both steps are linear and the bilinear weights of each output pixel sum to one, so the 1x1 conv runs at
    whichever resolution is lower: the same function with fewer multiply-adds.
    """

    def __init__(self, in_chs: int, out_chs: int, scale_exp: int, cfg: MaximBlockCfg, device=None, dtype=None):
        super().__init__()
        self.scale_exp, self.antialias = scale_exp, cfg.antialias
        self.conv = ConvNhwc(in_chs, out_chs, 1, bias=cfg.bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        if self.scale_exp == 0:
            return self.conv(x)
        if self.scale_exp > 0:
            return resize_nhwc(self.conv(x), (h << self.scale_exp, w << self.scale_exp), self.antialias)
        return self.conv(resize_nhwc(x, (h >> -self.scale_exp, w >> -self.scale_exp), self.antialias))


class MultiScaleFusion(nn.Module):
    """Concatenate features of several levels, each resized to one level and projected (MAXIM multi-level skips)."""

    def __init__(
        self,
        in_chs: Sequence[int],
        scale_exps: Sequence[int],
        out_chs: int,
        cfg: MaximBlockCfg,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.ups = nn.ModuleList(
            [
                UpSampleRatio(c, out_chs, e, cfg, device=device, dtype=dtype)
                for c, e in zip(in_chs, scale_exps, strict=True)
            ]
        )

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        resized = []  # TorchScript iterates a ModuleList only in a for loop, and zips it only with modules
        for i, up in enumerate(self.ups):
            resized.append(up(feats[i]))
        return torch.cat(resized, dim=-1)


class SAM(nn.Module):
    """Supervised attention module between stages (MPRNet, Zamir et al. CVPR 2021): restored image
    R = Conv3(x) + I; features x + Conv3(x) * sigmoid(Conv3(R)). Returns (features, R)."""

    def __init__(self, dim: int, out_chs: int = 3, residual: bool = True, bias: bool = True, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.residual = residual
        self.conv_feat = ConvNhwc(dim, dim, 3, bias=bias, **dd)
        self.conv_img = ConvNhwc(dim, out_chs, 3, bias=bias, **dd)
        self.conv_attn = ConvNhwc(out_chs, dim, 3, bias=bias, **dd)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored = self.conv_img(x)
        if self.residual:
            restored = restored + image
        feat = self.conv_feat(x) * torch.sigmoid(self.conv_attn(restored)) + x
        return feat, restored


class OutputConv(nn.Module):
    """Output head of the last stage: Conv3x3 to image channels, plus the input image at that scale."""

    def __init__(self, dim: int, out_chs: int = 3, residual: bool = True, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.residual = residual
        self.conv = ConvNhwc(dim, out_chs, 3, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[None, torch.Tensor]:
        out = self.conv(x)
        return None, (out + image if self.residual else out)
