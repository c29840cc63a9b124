"""ConViT at any resolution: gated positional self-attention for classification, detection and segmentation.

d'Ascoli et al., "ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases", ICML 2021
(arXiv:2103.10697; official code facebookresearch/convit, Apache-2.0). A plain ViT (patch 16, depth 12, MLP ratio 4,
no qkv bias, LayerNorm eps 1e-6) whose first `local_up_to_layer` (10) blocks use GPSA (Eq. 5); the class token is
concatenated just before the first plain-attention block.

What this version adds to timm's `convit_*` (whose state dicts load here unchanged, strict):
- any H x W input (multiple of the patch size, or padded with `dynamic_img_pad`): GPSA uses relative offsets in both
  axes and the learned position embedding is resampled to the grid (bicubic);
- GPSA's positional attention factorises into a row and a column softmax (see `visiongates.layers.gpsa`), cached per
  grid size while pos_proj needs no gradient: no [B, N, N, 3] offset table, no N x N positional map;
- gradient checkpointing, the "+" variants (per-head width 64), and a single /16 feature map without the class token
  for dense heads (`features_only=True`, `forward_intermediates`).
"""

from collections.abc import Callable
from typing import Any

import torch
from timm.layers import (
    Attention,
    DropPath,
    LayerNorm,
    Mlp,
    PatchEmbed,
    calculate_drop_path_rates,
    get_device_dtype,
    resample_abs_pos_embed,
    trunc_normal_,
)
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from visiongates.checkpoint import clean_checkpoint
from visiongates.layers.gpsa import GPSA
from visiongates.layers.weight_init import trunc_normal_init

from ._registry import ModelFacts, build_model, pretrained_cfg
from ._timm_api import Indices, Levels, TimmModelApi

__all__ = ["GpsaConVit", "ConVitBlock", "checkpoint_filter_fn"]


class ConVitBlock(nn.Module):
    """Pre-norm transformer block whose attention is GPSA (local blocks) or plain multi-head self-attention."""

    use_gpsa: torch.jit.Final[bool]  # a constant, so TorchScript compiles only the branch that matches `attn`

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        norm_layer: Callable[..., nn.Module] = LayerNorm,
        use_gpsa: bool = True,
        locality_strength: float = 1.0,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.use_gpsa = use_gpsa
        self.norm1 = norm_layer(dim, **dd)
        attn_args = dict(num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, **dd)
        if use_gpsa:
            self.attn = GPSA(dim, locality_strength=locality_strength, **attn_args)
        else:
            self.attn = Attention(dim, **attn_args)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim, **dd)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop, **dd)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        y = self.norm1(x)
        if self.use_gpsa:  # noqa: SIM108  (an if statement: TorchScript drops only its dead branch, not a ternary's)
            y = self.attn(y, feat_size)
        else:
            y = self.attn(y)
        x = x + self.drop_path1(y)
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class GpsaConVit(TimmModelApi, nn.Module):
    """ConViT (d'Ascoli et al. 2021) over any input size, with cached gated positional self-attention."""

    no_weight_decay_keys = frozenset({"pos_embed", "cls_token"})
    output_fmts = ("NCHW", "NLC")

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[..., nn.Module] = LayerNorm,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        local_up_to_layer: int = 10,
        locality_strength: float = 1.0,
        use_pos_embed: bool = True,
        class_token: bool = True,
        dynamic_img_pad: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """embed_dim is the full width (timm's `convit_*` take the per-head width and multiply by num_heads)."""
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if global_pool not in ("", "avg", "token"):
            raise ValueError(f"global_pool must be '', 'avg' or 'token', got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs the class token")
        if class_token and local_up_to_layer >= depth:
            raise ValueError("the class token is inserted before block local_up_to_layer, which must be < depth")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.local_up_to_layer = local_up_to_layer
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.locality_strength = locality_strength
        self.grad_checkpointing = False

        self.patch_embed = PatchEmbed(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            output_fmt="NHWC",
            strict_img_size=False,
            dynamic_img_pad=dynamic_img_pad,
            **dd,
        )
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim, **dd)) if class_token else None
        self.num_prefix_tokens = 1 if class_token else 0
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim, **dd)) if use_pos_embed else None
        self.pos_drop = nn.Dropout(pos_drop_rate)

        dpr = calculate_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            [
                ConVitBlock(
                    embed_dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    proj_drop=proj_drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[i],
                    act_layer=act_layer,
                    norm_layer=norm_layer,
                    use_gpsa=i < local_up_to_layer,
                    locality_strength=locality_strength,
                    **dd,
                )
                for i in range(depth)
            ]
        )
        self.norm = norm_layer(embed_dim, **dd)
        reduction = self.patch_embed.feat_ratio()
        self.feature_info = [dict(num_chs=embed_dim, reduction=reduction, module=f"blocks.{i}") for i in range(depth)]
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        """timm/official init: trunc-normal(0.02) linears, pos-embed and class token; then GPSA's local init."""
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)
        self.apply(trunc_normal_init)
        for module in self.modules():
            if isinstance(module, GPSA):
                module.local_init()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^cls_token|pos_embed|patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("", "avg", "token"):
                raise ValueError(f"global_pool must be '', 'avg' or 'token', got {global_pool!r}")
            if global_pool == "token" and self.cls_token is None:
                raise ValueError("global_pool='token' needs the class token")
            self.global_pool = global_pool
        dd = get_device_dtype(self)
        self.head = nn.Linear(self.embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch tokens [B, H*W, C] with the position embedding resampled to the H x W grid."""
        x = self.patch_embed(x)
        batch, height, width, channels = x.shape
        x = x.reshape(batch, height * width, channels)
        if self.pos_embed is not None:
            x = x + resample_abs_pos_embed(
                self.pos_embed, new_size=[height, width], old_size=list(self.patch_embed.grid_size), num_prefix_tokens=0
            )
        return self.pos_drop(x), (height, width)

    def _block(self, index: int, x: torch.Tensor, feat_size: tuple[int, int]) -> torch.Tensor:
        """Run block `index`, inserting the class token before the first plain-attention block."""
        if index == self.local_up_to_layer and self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        block = self.blocks[index]
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(block, x, feat_size)
        return block(x, feat_size)

    def _num_prefix_after(self, index: int) -> int:
        return int(self.cls_token is not None and index >= self.local_up_to_layer)

    def _levels(
        self, x: torch.Tensor, indices: Indices, norm: bool, stop_early: bool, output_fmt: str, final: bool
    ) -> Levels:
        """Final features and the outputs of the selected blocks (patch tokens only, class token removed).

        indices: last n blocks if int, all if None, or explicit block indices. norm: apply the final norm to
        the intermediates. output_fmt: 'NCHW' (B, C, H/16, W/16) or 'NLC'.
        """
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        x, feat_size = self._embed(x)
        last = max_index if stop_early else len(self.blocks) - 1
        intermediates = []
        for index in range(last + 1):
            x = self._block(index, x, feat_size)
            if index in take_indices:
                y = self.norm(x) if norm else x
                intermediates.append(y[:, self._num_prefix_after(index) :])
        if output_fmt == "NCHW":
            height, width = feat_size
            intermediates = [
                y.reshape(y.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates
            ]
        return self.norm(x) if final else None, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks (and class token, norm, head where unused) after the last wanted intermediate."""
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: max_index + 1]
        if max_index < self.local_up_to_layer and self.cls_token is not None:
            # the class token would only join after the kept blocks: unused, and a token-pooled head with it
            self.cls_token = None
            self.num_prefix_tokens = 0
            prune_head = prune_head or self.global_pool == "token"
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens [B, prefix + H*W, C] (the class token first where it is used)."""
        x, feat_size = self._embed(x)
        for index, block in enumerate(self.blocks):  # `_block` inlined: TorchScript indexes no ModuleList by a variable
            if index == self.local_up_to_layer and self.cls_token is not None:
                x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(block, x, feat_size)
            else:
                x = block(x, feat_size)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x[:, self.num_prefix_tokens :].mean(dim=1)
        elif self.global_pool == "token":
            x = x[:, 0]
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: dict[str, Any], model: GpsaConVit) -> dict[str, torch.Tensor]:
    """Load official (facebookresearch/convit) or timm `convit_*` checkpoints: same keys; unwrap, resample pos_embed.

    Accepts {'model': ...} / {'state_dict': ...} wrappers and DataParallel `module.` prefixes; drops the reference
    implementation's cached `rel_indices`; resamples a square position embedding to the model's grid.
    """
    out = {}
    for key, value in clean_checkpoint(state_dict).items():
        if key.endswith("rel_indices"):
            continue
        if key == "pos_embed" and model.pos_embed is not None and value.shape != model.pos_embed.shape:
            value = resample_abs_pos_embed(value, new_size=model.patch_embed.grid_size, num_prefix_tokens=0)
        out[key] = value
    return out


def _create_gpsa_convit(variant: str, pretrained: bool = False, **kwargs: Any) -> GpsaConVit:
    # features_only: the last 3 blocks' /16 maps, as timm's ViTs
    return build_model(GpsaConVit, variant, pretrained, checkpoint_filter_fn, 3, **kwargs)


PAPER = (
    "arXiv:2103.10697",
    "ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases",
    "https://github.com/facebookresearch/convit",
)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    layers = dict(first_conv="patch_embed.proj", classifier="head")
    return pretrained_cfg(dict(fixed_input_size=False, **layers, license="apache-2.0"), kwargs, PAPER)


# ImageNet-1k weights: timm's own `convit_{tiny,small,base}.fb_in1k` (timm/models/convit.py default_cfgs, hf_hub_id
# 'timm/' + name, i.e. the Hugging Face repos timm/convit_*.fb_in1k, apache-2.0), the facebookresearch/convit release
# in timm's key layout, which this model shares. Top-1 (timm results): 73.14 / 81.41 / 82.30. No "+" weights exist.
default_cfgs = generate_default_cfgs(
    {
        "gpsa_convit_tiny.fb_in1k": _cfg(hf_hub_id="timm/convit_tiny.fb_in1k"),
        "gpsa_convit_small.fb_in1k": _cfg(hf_hub_id="timm/convit_small.fb_in1k"),
        "gpsa_convit_base.fb_in1k": _cfg(hf_hub_id="timm/convit_base.fb_in1k"),
        "gpsa_convit_tiny_plus": _cfg(),
        "gpsa_convit_small_plus": _cfg(),
        "gpsa_convit_base_plus": _cfg(),
    }
)

# Paper Table 1 lists rounded sizes (Ti 6M / 1G FLOPs ... B+ 152M / 30G); the exact parameter counts are timm's
# for the same architectures (docs/models.md); GMACs are counted here (visiongates.flops, 224x224) and agree with
# timm's model cards to within 0.1%. Top-1 of timm's weights: Ti 73.14, S 81.41, B 82.30.
_SOURCE = "ConViT (arXiv:2103.10697) Table 1 variants; exact params from timm, GMACs counted here (docs/models.md)"
model_facts = {
    "gpsa_convit_tiny": ModelFacts(5.71, _SOURCE, 1.258),
    "gpsa_convit_small": ModelFacts(27.78, _SOURCE, 5.760),
    "gpsa_convit_base": ModelFacts(86.54, _SOURCE, 17.529),
    "gpsa_convit_tiny_plus": ModelFacts(9.97, _SOURCE, 2.141),
    "gpsa_convit_small_plus": ModelFacts(48.98, _SOURCE, 10.023),
    "gpsa_convit_base_plus": ModelFacts(153.1, _SOURCE, 30.777),
}


def _variant(head_dim: int, num_heads: int) -> dict[str, Any]:
    return dict(embed_dim=head_dim * num_heads, num_heads=num_heads, local_up_to_layer=10, locality_strength=1.0)


@register_model
def gpsa_convit_tiny(pretrained: bool = False, **kwargs: Any) -> GpsaConVit:
    """ConViT-Ti: 4 heads of width 48 (192), loads timm's `convit_tiny` weights."""
    return _create_gpsa_convit("gpsa_convit_tiny", pretrained, **dict(_variant(48, 4), **kwargs))


@register_model
def gpsa_convit_small(pretrained: bool = False, **kwargs: Any) -> GpsaConVit:
    """ConViT-S: 9 heads of width 48 (432), loads timm's `convit_small` weights."""
    return _create_gpsa_convit("gpsa_convit_small", pretrained, **dict(_variant(48, 9), **kwargs))


@register_model
def gpsa_convit_base(pretrained: bool = False, **kwargs: Any) -> GpsaConVit:
    """ConViT-B: 16 heads of width 48 (768), loads timm's `convit_base` weights."""
    return _create_gpsa_convit("gpsa_convit_base", pretrained, **dict(_variant(48, 16), **kwargs))


@register_model
def gpsa_convit_tiny_plus(pretrained: bool = False, **kwargs: Any) -> GpsaConVit:
    """ConViT-Ti+: 4 heads of width 64 (256)."""
    return _create_gpsa_convit("gpsa_convit_tiny_plus", pretrained, **dict(_variant(64, 4), **kwargs))


@register_model
def gpsa_convit_small_plus(pretrained: bool = False, **kwargs: Any) -> GpsaConVit:
    """ConViT-S+: 9 heads of width 64 (576)."""
    return _create_gpsa_convit("gpsa_convit_small_plus", pretrained, **dict(_variant(64, 9), **kwargs))


@register_model
def gpsa_convit_base_plus(pretrained: bool = False, **kwargs: Any) -> GpsaConVit:
    """ConViT-B+: 16 heads of width 64 (1024)."""
    return _create_gpsa_convit("gpsa_convit_base_plus", pretrained, **dict(_variant(64, 16), **kwargs))
