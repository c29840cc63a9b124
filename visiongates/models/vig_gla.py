"""ViG: gated-linear-attention vision backbones, plain (ViG-T/S/B) and hierarchical (ViG-H-T/S/B).

Liao et al., "ViG: Linear-complexity Visual Sequence Learning with Gated Linear Attention" (arXiv:2405.18425,
AAAI 2025). Official code: hustvl/ViG (MIT), classification/models/vig.py, vig_h.py and configs/vig*/; this file
rebuilds those models, block for block, on the pure-PyTorch BiGLA op (`visiongates.ops.bigla`), so they run on
any device and export to ONNX.

Plain ViG (vig.py with configs/vig/vig-{t,s,b}.yaml): stem Conv(3->d/2, k9 s8 p1) -> LN2d -> SiLU ->
Conv(d/2->d, k3 s2 p1) -> LN2d (stride 16); learned absolute position embedding (resized bicubically to other
grids), no class token; 12 pre-norm RMSNorm blocks of BiGLA attention (qk head dim 32, v head dim 64) and SwiGLU
(hidden 512/1024/2048); final RMSNorm, mean pool, linear head. ViG-T alone has SiLU after the depthwise conv and
before the output projection. Official drop-path rates: 0 / 0.2 / 0.5 (pass `drop_path_rate` for training).

Hierarchical ViG-H (vig_h.py with configs/vig-h/vig-h-{t,s,b}.yaml): stem Conv(k3 s2 p1) -> LN2d -> GELU ->
Conv(k3 s2 p1) -> LN2d (stride 4); four stages, each opened (stages 1-3) by Conv(k3 s2 p1) + LN2d; pre-norm
LayerNorm blocks of the same BiGLA attention (qk head dim 16, v head dim 32, no SiLUs) and SwiGLU (hidden rounded
to 32); final LN2d, mean pool, linear head. Official drop-path rates: 0.2 / 0.3 / 0.6.

Init as the official code: plain ViG draws every Linear from N(0, 0.02) and then re-initialises the attention's
qkv / decay / gate / output projections and depthwise conv with xavier-uniform (gain 2^-2.5); HierViG applies
trunc-normal(0.02) to every Linear after the attention's xavier init, so there only the depthwise conv keeps it.
Neither official model exempts `pos_embed` from weight decay (only 1-D tensors and biases), so `no_weight_decay`
is empty.
"""

import re
from functools import partial
from typing import Any

import torch
import torch.nn as nn
from timm.layers import (
    LayerNorm2d,
    RmsNorm,
    SelectAdaptivePool2d,
    calculate_drop_path_rates,
    get_device_dtype,
    resample_abs_pos_embed,
    to_2tuple,
    trunc_normal_,
)
from timm.models import checkpoint, generate_default_cfgs, register_model, resolve_pretrained_cfg
from timm.models._features import feature_take_indices

from visiongates.checkpoint import clean_checkpoint
from visiongates.layers.bigla_attn import BiGlaAttention, BiGlaBlock, swiglu_hidden
from visiongates.layers.weight_init import trunc_normal_init

from ._registry import ModelFacts, build_model, pretrained_cfg
from ._timm_api import Indices, Levels, TimmModelApi

__all__ = ["VigGla", "VigGlaHier", "checkpoint_filter_fn"]

_LN_EPS = 1e-5  # nn.LayerNorm's default, used by every official LN / LN2d
_RMS_EPS = 1e-6  # fla GLAConfig.rms_norm_eps


def _conv_out(size: int, kernel: int, stride: int, padding: int = 1) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ConvStem(nn.Module):
    """Two strided convs with LayerNorm2d after each and an activation between (ViG `V2PatchEmbed`, HierViG v2)."""

    def __init__(
        self,
        in_chans: int,
        out_chs: int,
        kernel_size: int,
        stride: int,
        act_layer: type[nn.Module],
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv1 = nn.Conv2d(in_chans, out_chs // 2, kernel_size, stride=stride, padding=1, **dd)
        self.norm1 = LayerNorm2d(out_chs // 2, eps=_LN_EPS, **dd)
        self.act = act_layer()
        self.conv2 = nn.Conv2d(out_chs // 2, out_chs, 3, stride=2, padding=1, **dd)
        self.norm2 = LayerNorm2d(out_chs, eps=_LN_EPS, **dd)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Feature-map size for an input of `size` (H, W)."""
        return tuple(_conv_out(_conv_out(s, self.kernel_size, self.stride), 3, 2) for s in size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


def _run_block(block: nn.Module, x: torch.Tensor, feat_size: tuple[int, int], grad_checkpointing: bool) -> torch.Tensor:
    if grad_checkpointing and not torch.jit.is_scripting():
        return checkpoint(block, x, feat_size)
    return block(x, feat_size)


def _init_linear_normal(module: nn.Module) -> None:
    """Plain ViG `_init_weights`: N(0, 0.02) for Linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class VigGla(TimmModelApi, nn.Module):
    """Plain (isotropic) ViG: conv stem, absolute position embedding, BiGLA blocks at stride 16 (Liao et al. 2024)."""

    output_fmts = ("NCHW", "NLC")

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_multiple: int = 256,
        conv_act: bool = False,
        out_act: bool = False,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        bigla_backend: str = "auto",
        official_eval_numerics: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """`official_eval_numerics`: evaluate as hustvl/ViG's eval branch does (the attention output halved before its
        RMSNorm, i.e. that norm's epsilon 4e-6 instead of 1e-6; see `BiGlaAttention`). On by default only when
        `pretrained=True` loads the `hustvl_in1k` tag (from the hub or a file overlay); pass False to evaluate
        those weights as they were trained. Training mode is never affected."""
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        if global_pool not in ("", "avg"):
            raise ValueError(f"global_pool must be '' or 'avg', got {global_pool!r}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.output_fmt = "NHWC"  # forward_features: the token grid as [B, H, W, C], as timm's Swin
        self.grad_checkpointing = False

        self.stem = ConvStem(in_chans, embed_dim, kernel_size=9, stride=8, act_layer=nn.SiLU, **dd)
        self.grid_size = self.stem.output_size(to_2tuple(img_size))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], embed_dim, **dd))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        block = partial(
            BiGlaBlock, embed_dim, num_heads, swiglu_hidden(embed_dim, mlp_multiple),
            norm_layer=partial(RmsNorm, eps=_RMS_EPS), conv_act=conv_act, out_act=out_act, backend=bigla_backend,
            official_eval_numerics=official_eval_numerics, **dd,
        )  # fmt: skip
        rates = calculate_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList([block(drop_path=rate) for rate in rates])
        self.feature_info = [dict(num_chs=embed_dim, reduction=16, module=f"blocks.{i}") for i in range(depth)]
        self.norm = RmsNorm(embed_dim, eps=_RMS_EPS, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_linear_normal)
        for module in self.modules():
            if isinstance(module, BiGlaAttention):
                module.init_weights(xavier_linears=True)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stem|^pos_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("", "avg"):
                raise ValueError(f"global_pool must be '' or 'avg', got {global_pool!r}")
            self.global_pool = global_pool
        dd = get_device_dtype(self)
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.stem(x)
        feat_size = (x.shape[-2], x.shape[-1])
        pos_embed = resample_abs_pos_embed(
            self.pos_embed,
            new_size=list(feat_size),
            old_size=list(self.grid_size),
            num_prefix_tokens=0,
            antialias=False,
        )  # the official resize: bicubic, align_corners=False, no antialiasing
        return self.pos_drop(x.flatten(2).transpose(1, 2) + pos_embed), feat_size

    def _levels(
        self, x: torch.Tensor, indices: Indices, norm: bool, stop_early: bool, output_fmt: str, final: bool
    ) -> Levels:
        """Block outputs (all if `indices` is None, the last n if an int) as NCHW maps at stride 16 (or NLC)."""
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        x, feat_size = self._embed(x)
        blocks = self.blocks[: max_index + 1] if stop_early else self.blocks
        intermediates = []
        for i, block in enumerate(blocks):
            x = _run_block(block, x, feat_size, self.grad_checkpointing)
            if i in take_indices:
                y = self.norm(x) if norm else x
                nchw = output_fmt == "NCHW"
                intermediates.append(y.transpose(1, 2).reshape(y.shape[0], -1, *feat_size) if nchw else y)
        if not final:
            return None, intermediates
        return self.norm(x).reshape(x.shape[0], feat_size[0], feat_size[1], x.shape[-1]), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks after the last one needed for `indices` (and the norm / head if asked)."""
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled token grid [B, H/16, W/16, C] (timm's NHWC layout, `output_fmt`) after the final norm."""
        x, feat_size = self._embed(x)
        for block in self.blocks:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(block, x, feat_size)
            else:
                x = block(x, feat_size)
        return self.norm(x).reshape(x.shape[0], feat_size[0], feat_size[1], x.shape[-1])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(1, 2))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class VigGlaStage(nn.Module):
    """One ViG-H stage: optional Conv(k3 s2) + LN2d downsampling, then BiGLA blocks on the [B, H*W, C] tokens."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        num_heads: int,
        downsample: bool,
        drop_path_rates: list[float],
        mlp_multiple: int = 32,
        bigla_backend: str = "auto",
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """One BiGLA block per drop-path rate."""
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.grad_checkpointing = False
        if downsample:
            self.downsample = nn.Sequential()
            self.downsample.add_module("conv", nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1, **dd))
            self.downsample.add_module("norm", LayerNorm2d(out_chs, eps=_LN_EPS, **dd))
        else:
            self.downsample = nn.Identity()
        norm_layer = partial(nn.LayerNorm, eps=_LN_EPS)
        hidden = swiglu_hidden(out_chs, mlp_multiple)
        self.blocks = nn.ModuleList(
            BiGlaBlock(out_chs, num_heads, hidden, norm_layer=norm_layer, drop_path=rate, backend=bigla_backend, **dd)
            for rate in drop_path_rates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        batch, channels, height, width = x.shape
        feat_size = (height, width)
        x = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(block, x, feat_size)
            else:
                x = block(x, feat_size)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class VigGlaHier(TimmModelApi, nn.Module):
    """Hierarchical ViG (ViG-H): conv stem at stride 4, four BiGLA stages at strides 4-32 (Liao et al. 2024)."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        dims: tuple[int, ...] = (96, 192, 384, 768),
        depths: tuple[int, ...] = (2, 2, 5, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        mlp_multiple: int = 32,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        bigla_backend: str = "auto",
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.stem = ConvStem(in_chans, dims[0], kernel_size=3, stride=2, act_layer=nn.GELU, **dd)
        rates = calculate_drop_path_rates(drop_path_rate, sum(depths))
        stages, self.feature_info = [], []
        for i, (dim, depth, heads) in enumerate(zip(dims, depths, num_heads)):
            first = sum(depths[:i])
            stage_rates = rates[first : first + depth]
            prev = dims[i - 1] if i else dim
            stages.append(VigGlaStage(prev, dim, heads, i > 0, stage_rates, mlp_multiple, bigla_backend, **dd))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = dims[-1]
        self.norm = LayerNorm2d(self.num_features, eps=_LN_EPS, **dd)
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))  # '': NCHW map
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, BiGlaAttention):
                module.init_weights(xavier_linears=False)  # HierViG's apply(_init_weights) overrides the linears
        self.apply(trunc_normal_init)  # HierViG `_init_weights`

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)"
            if coarse
            else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))  # '': NCHW map
        dd = get_device_dtype(self)
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def _levels(
        self, x: torch.Tensor, indices: Indices, norm: bool, stop_early: bool, output_fmt: str, final: bool
    ) -> Levels:
        """Stage outputs (strides 4, 8, 16, 32) as NCHW maps; `norm` applies the final norm to the last one."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last = len(self.stages) - 1
        x = self.stem(x)
        stages = self.stages[: max_index + 1] if stop_early else self.stages
        intermediates = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm and i == last else x)
        if not final:
            return None, intermediates
        return (self.norm(x) if i == last else x), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last one needed; the final norm and head go with the last stage."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        if prune_norm or prune_end:
            self.norm = nn.Identity()  # sized for, and applied to, the last stage only
        self.stages = self.stages[: max_index + 1]
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# official key (regex) -> ours; applied in order to keys without a `module.` prefix
_PLAIN_RENAMES = (
    (r"^patch_embed\.proj\.0\.", "stem.conv1."),
    (r"^patch_embed\.proj\.1\.", "stem.norm1."),
    (r"^patch_embed\.proj\.3\.", "stem.conv2."),
    (r"^patch_embed\.proj\.4\.", "stem.norm2."),
    (r"^blocks\.(\d+)\.attn_norm\.", r"blocks.\1.norm1."),
    (r"^blocks\.(\d+)\.mlp_norm\.", r"blocks.\1.norm2."),
    (r"^blocks\.(\d+)\.mlp\.gate_proj\.", r"blocks.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.mlp\.down_proj\.", r"blocks.\1.mlp.fc2."),
)
_HIER_RENAMES = (
    (r"^patch_embed\.0\.", "stem.conv1."),
    (r"^patch_embed\.2\.", "stem.norm1."),
    (r"^patch_embed\.5\.", "stem.conv2."),
    (r"^patch_embed\.7\.", "stem.norm2."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.norm\.", r"stages.\1.blocks.\2.norm1."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.op\.", r"stages.\1.blocks.\2.attn."),
    (r"^layers\.(\d+)\.blocks\.", r"stages.\1.blocks."),
    (r"^classifier\.norm\.", "norm."),
    (r"^classifier\.head\.", "head."),
)
_ATTN_RENAMES = (
    (r"\.attn\.in_proj\.0\.", ".attn.conv."),
    (r"\.attn\.qkv_proj\.", ".attn.qkv."),
    (r"\.attn\.gk_proj\.0\.", ".attn.decay_down."),
    (r"\.attn\.gk_proj\.1\.", ".attn.decay_up."),
    (r"\.attn\.g_proj\.", ".attn.gate."),
    (r"\.attn\.g_norm\.", ".attn.norm_attn."),
    (r"\.attn\.l_norm\.", ".attn.norm_local."),
    (r"\.attn\.o_proj\.", ".attn.proj."),
)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map an official hustvl/ViG checkpoint (vig.py `ViG` or vig_h.py `HierViG` layout) to this model's keys.

    Accepts the released files (a bare state dict, e.g. vig_t_77p2acc.pth), training checkpoints (`{'model': ...}`),
    `module.` prefixes and already-converted state dicts.
    ViG-H's 1x1-conv (`Linear2d`) weights are stored as [out, in] and load into nn.Linear as they are; a
    `pos_embed` of another grid is resized bicubically; mmdet backbone `outnorm*` layers are dropped.
    """
    hier = isinstance(model, VigGlaHier)
    out = {}
    for key, value in clean_checkpoint(state_dict).items():
        if key.startswith("outnorm"):
            continue
        if hier and (match := re.match(r"^layers\.(\d+)\.downsample\.([13])\.(.+)$", key)):
            stage, index, rest = match.groups()  # HierViG's downsample ends stage i; ours opens stage i + 1
            key = f"stages.{int(stage) + 1}.downsample.{'conv' if index == '1' else 'norm'}.{rest}"
        for pattern, replacement in (*(_HIER_RENAMES if hier else _PLAIN_RENAMES), *_ATTN_RENAMES):
            key = re.sub(pattern, replacement, key)
        if key == "pos_embed" and value.shape != model.pos_embed.shape:
            old = int(round(value.shape[1] ** 0.5))
            value = resample_abs_pos_embed(
                value, new_size=list(model.grid_size), old_size=[old, old], num_prefix_tokens=0, antialias=False
            )
        out[key] = value
    return out


def _create_vig_gla(cls: type[nn.Module], variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    plain = cls is VigGla
    if plain and pretrained:  # the official plain-ViG weights are evaluated with the official eval numerics
        cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
        kwargs.setdefault("official_eval_numerics", cfg.tag == _OFFICIAL_TAG)
    out_indices = 3 if plain else (0, 1, 2, 3)  # features_only; plain: the last 3 blocks, as timm's ViTs
    return build_model(cls, variant, pretrained, checkpoint_filter_fn, out_indices, **kwargs)


PAPER = (
    "arXiv:2405.18425",
    "ViG: Linear-complexity Visual Sequence Learning with Gated Linear Attention",
    "https://github.com/hustvl/ViG",
)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return pretrained_cfg(
        dict(pool_size=(7, 7), first_conv="stem.conv1", classifier="head", license="mit"), kwargs, PAPER
    )


# The official ImageNet-1k weights: hustvl/ViG README "Model Weights" -> Hugging Face repo hustvl/ViG (model card
# license apache-2.0; the code repository is MIT), one bare state dict per model, files as listed in that repo.
_OFFICIAL_TAG = "hustvl_in1k"


def _hustvl(filename: str, top1: float, **kwargs: Any) -> dict[str, Any]:
    return _cfg(
        hf_hub_id="hustvl/ViG", hf_hub_filename=filename, license="apache-2.0",
        description=f"official ImageNet-1k weights, top-1 {top1} (hustvl/ViG README)", **kwargs,
    )  # fmt: skip


default_cfgs = generate_default_cfgs(
    {
        f"vig_gla_tiny.{_OFFICIAL_TAG}": _hustvl("vig_t_77p2acc.pth", 77.2, pool_size=(14, 14)),
        f"vig_gla_small.{_OFFICIAL_TAG}": _hustvl("vig_s_81p7acc.pth", 81.7, pool_size=(14, 14)),
        f"vig_gla_base.{_OFFICIAL_TAG}": _hustvl("vig_b_82p6acc.pth", 82.6, pool_size=(14, 14)),
        f"vig_gla_h_tiny.{_OFFICIAL_TAG}": _hustvl("vig_h_t_82p8acc.pth", 82.8),
        f"vig_gla_h_small.{_OFFICIAL_TAG}": _hustvl("vig_h_s_83p8acc.pth", 83.8),
        f"vig_gla_h_base.{_OFFICIAL_TAG}": _hustvl("vig_h_b_84p2acc.pth", 84.2),
    }
)

# Parameters: the official code's sizes (docs/models.md). GMACs: counted here (visiongates.flops, 224x224: every
# convolution and matrix product, BiGLA as 2 K V MACs per token, head and direction). The paper's FLOPs for plain
# ViG are smaller (ViG-S about 3.5 G against 4.48 here) because the official plain ViG computes its SwiGLU
# down-projection inside fla's fused `swiglu_linear`, a custom autograd function that a tracing counter (fvcore)
# does not see: without it we count 3.56 G for ViG-S (tests/test_vig.py). That does not apply to ViG-H, whose
# official MLP (vig_h.py gMlp) calls a plain nn.Linear `fc2`, visible to any counter; ViG-H's figures here have not
# been compared with the paper's.
_PAPER = "params: ViG official code (docs/models.md); GMACs counted here (visiongates.flops)"
model_facts = {
    "vig_gla_tiny": ModelFacts(5.83, _PAPER, 1.168),
    "vig_gla_small": ModelFacts(22.62, _PAPER, 4.481),
    "vig_gla_base": ModelFacts(89.02, _PAPER, 17.547),
    "vig_gla_h_tiny": ModelFacts(28.60, _PAPER, 4.494),
    "vig_gla_h_small": ModelFacts(50.05, _PAPER, 8.751),
    "vig_gla_h_base": ModelFacts(88.90, _PAPER, 15.557),
}


@register_model
def vig_gla_tiny(pretrained: bool = False, **kwargs: Any) -> VigGla:
    """ViG-T: dim 192, 3 heads; SiLU after the depthwise conv and before the output projection. Official
    drop-path 0.0."""
    args = dict(embed_dim=192, depth=12, num_heads=3, conv_act=True, out_act=True)
    return _create_vig_gla(VigGla, "vig_gla_tiny", pretrained, **dict(args, **kwargs))


@register_model
def vig_gla_small(pretrained: bool = False, **kwargs: Any) -> VigGla:
    """ViG-S: dim 384, 6 heads. Official drop-path 0.2."""
    args = dict(embed_dim=384, depth=12, num_heads=6)
    return _create_vig_gla(VigGla, "vig_gla_small", pretrained, **dict(args, **kwargs))


@register_model
def vig_gla_base(pretrained: bool = False, **kwargs: Any) -> VigGla:
    """ViG-B: dim 768, 12 heads. Official drop-path 0.5."""
    args = dict(embed_dim=768, depth=12, num_heads=12)
    return _create_vig_gla(VigGla, "vig_gla_base", pretrained, **dict(args, **kwargs))


@register_model
def vig_gla_h_tiny(pretrained: bool = False, **kwargs: Any) -> VigGlaHier:
    """ViG-H-T: dims 96-768, depths 2-2-5-2, heads 3-24. Official drop-path 0.2."""
    args = dict(dims=(96, 192, 384, 768), depths=(2, 2, 5, 2), num_heads=(3, 6, 12, 24))
    return _create_vig_gla(VigGlaHier, "vig_gla_h_tiny", pretrained, **dict(args, **kwargs))


@register_model
def vig_gla_h_small(pretrained: bool = False, **kwargs: Any) -> VigGlaHier:
    """ViG-H-S: dims 96-768, depths 2-2-17-2, heads 3-24. Official drop-path 0.3."""
    args = dict(dims=(96, 192, 384, 768), depths=(2, 2, 17, 2), num_heads=(3, 6, 12, 24))
    return _create_vig_gla(VigGlaHier, "vig_gla_h_small", pretrained, **dict(args, **kwargs))


@register_model
def vig_gla_h_base(pretrained: bool = False, **kwargs: Any) -> VigGlaHier:
    """ViG-H-B: dims 128-1024, depths 2-2-17-2, heads 4-32. Official drop-path 0.6."""
    args = dict(dims=(128, 256, 512, 1024), depths=(2, 2, 17, 2), num_heads=(4, 8, 16, 32))
    return _create_vig_gla(VigGlaHier, "vig_gla_h_base", pretrained, **dict(args, **kwargs))
