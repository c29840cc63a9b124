"""MSViT: a ViT/DeiT whose tokens are 16x16 or 32x32 patches, chosen per region by a learned gate.

Havtorn et al., "MSViT: Dynamic Mixed-Scale Tokenization for Vision Transformers", ICCVW 2023 (arXiv:2307.02321).
Only the loss is public (Qualcomm-AI-research/batchshaping); this model is written from the paper's description
(docs/models.md), on timm's VisionTransformer blocks:

- a light gate MLP per coarse 32x32 region emits a logit (`visiongates.layers.scale_gate`): Gumbel-sigmoid with a
  straight-through estimator in training, threshold at 0 in evaluation; a region is either one coarse token or its 4
  fine tokens (`visiongates.layers.mixed_scale`), never both, never neither;
- one patch embedding serves both scales: a coarse region is average-pooled 2x2 to 16x16 pixels (exactly bilinear
  resizing by 1/2) and embedded by the same convolution; its position embedding is the 2x2 mean of the fine ones;
- the generalized batch-shaping loss (`visiongates.losses.batch_shaping`) sets the share of regions kept fine when
  `gate_target` is given; `auxiliary_loss()` returns it for the last forward (tools/train.py adds it to the task loss).

Inference paths (`token_path`): 'drop' (default) gathers the kept tokens, padded to the longest sequence of the batch
with a key-padding mask (batch 1: no padding, no mask), so compute falls with the gate; 'masked' keeps one slot per
fine cell with a key mask: static shapes, the plain ViT's compute, the path for torch.export / ONNX. Training always
uses 'masked'. Features (`forward_features`, `forward_intermediates`, `features_only`) are dense: coarse tokens are
unpooled to their 2x2 fine cells, so a /16 NCHW map comes out whatever the gate chose.

A plain timm ViT / DeiT state dict loads into the backbone (`checkpoint_filter_fn`); the gate (and the batch-shaping
priors) keep their fresh initialisation, so the gate can be trained on top of existing weights.
"""

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.vision_transformer import VisionTransformer
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from visiongates.checkpoint import clean_checkpoint
from visiongates.layers.mixed_scale import (
    MixedScaleLayout,
    compact_slots,
    kept_patch_pixels,
    kept_slots,
    mixed_scale_layout,
    mixed_scale_slots,
    scatter_slots,
    unpool_slots,
)
from visiongates.layers.scale_gate import GateDecision, ScaleGate
from visiongates.losses.batch_shaping import GeneralizedBatchShapingLoss

from ._registry import ModelFacts, build_model, pretrained_cfg

__all__ = ["MixedScaleVisionTransformer", "checkpoint_filter_fn", "to_plain_vit"]

_POOLS = ("", "token", "avg", "avgmax", "max")
_TOKEN_PATHS = ("drop", "masked")
_SCALE_MODES = ("gate", "fine", "coarse")


def _tracing() -> bool:
    """Tracers (jit, FX, dynamo, export) take the static 'masked' path and leave no Python-side state."""
    return (
        torch.jit.is_tracing()
        or is_fx_symbolic_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
    )


class MixedScaleVisionTransformer(VisionTransformer):
    """MSViT (Havtorn et al. 2023): a timm VisionTransformer fed by a gated mix of 16x16 and 32x32 patch tokens."""

    def __init__(
        self,
        *,
        gate_hidden: int = 64,
        gate_depth: int = 2,
        gate_tau: float = 1.0,
        gate_init_bias: float = 0.0,
        gate_target: float | None = None,
        gate_loss_weight: float = 1.0,
        gate_hyperprior: str = "beta",
        gate_concentration: float = 10.0,
        gate_temperature_weight: float = 0.1,
        token_path: str = "drop",
        **kwargs: Any,
    ) -> None:
        """kwargs: timm VisionTransformer's (img_size, patch_size, embed_dim, depth, num_heads, drop rates, device,
        dtype...), DeiT-Ti's width and heads by default; the image size is always dynamic. gate_target: share of
        regions kept fine. None: the gate learns from the task loss alone; in (0, 1): the generalized batch-shaping
        loss (weight gate_loss_weight, Beta(c*t, c*(1-t)) or Normal hyperprior) pulls the share to it; 1.0 / 0.0:
        every region fine (the plain ViT) / coarse, gate unused. token_path: evaluation path, 'drop' or 'masked'
        (see the module docstring)."""
        global_pool = kwargs.get("global_pool", "token")
        if global_pool not in _POOLS:
            raise ValueError(f"global_pool must be one of {_POOLS}, got {global_pool!r}")
        if token_path not in _TOKEN_PATHS:
            raise ValueError(f"token_path must be one of {_TOKEN_PATHS}, got {token_path!r}")
        if gate_target is not None and not 0.0 <= gate_target <= 1.0:
            raise ValueError(f"gate_target is a share of regions and must lie in [0, 1], got {gate_target}")
        super().__init__(**{"embed_dim": 192, "num_heads": 3, **kwargs, "dynamic_img_size": True})
        dd = {"device": kwargs.get("device"), "dtype": kwargs.get("dtype")}
        self.patch = self.patch_embed.patch_size[0]
        if self.patch_embed.patch_size[0] != self.patch_embed.patch_size[1]:
            raise ValueError("MSViT needs square patches")
        self.token_path = token_path
        self.gate_target = gate_target
        self.scale_mode = {1.0: "fine", 0.0: "coarse"}.get(gate_target, "gate") if gate_target is not None else "gate"
        self.scale_gate = ScaleGate(
            self.in_chans,
            region=2 * self.patch,
            hidden=gate_hidden,
            depth=gate_depth,
            tau=gate_tau,
            init_bias=gate_init_bias,
            **dd,
        )
        grid = self.patch_embed.grid_size
        self.gate_loss = None
        if self.scale_mode == "gate" and gate_target is not None:
            self.gate_loss = GeneralizedBatchShapingLoss(
                (grid[0] // 2, grid[1] // 2),
                gate_target,
                weight=gate_loss_weight,
                hyperprior=gate_hyperprior,
                concentration=gate_concentration,
                temperature_weight=gate_temperature_weight,
                **dd,
            )
        self._last_decision: GateDecision | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave out the last forward's gate decision (it may hold an autograd graph)."""
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        return {**state, "_last_decision": None}

    # ------------------------------------------------------------------------------------------------ settings
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | {"gate_loss.mean_logit", "gate_loss.temperature_logit"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^cls_token|pos_embed|patch_embed|scale_gate|gate_loss",
            blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))],
        )

    def set_token_path(self, path: str) -> None:
        """'drop' (dynamic token count; compute falls) or 'masked' (static shapes; export) for evaluation."""
        if path not in _TOKEN_PATHS:
            raise ValueError(f"token_path must be one of {_TOKEN_PATHS}, got {path!r}")
        self.token_path = path

    def set_scale_mode(self, mode: str) -> None:
        """'gate' (learned choice), or force every region 'fine' (the plain ViT) or 'coarse'."""
        if mode not in _SCALE_MODES:
            raise ValueError(f"scale mode must be one of {_SCALE_MODES}, got {mode!r}")
        self.scale_mode = mode

    # ---------------------------------------------------------------------------------------------- tokenizing
    def coarse_grid(self, fine_grid: tuple[int, int]) -> tuple[int, int]:
        return fine_grid[0] // 2, fine_grid[1] // 2

    def decide_scales(self, x: torch.Tensor) -> GateDecision:
        """The gate's decision for images x [B, C, H, W]: logits, probabilities and fine mask, each [B, Hc, Wc]."""
        if self.scale_mode == "gate":
            return self.scale_gate.decide(x)
        grid = self.coarse_grid((x.shape[-2] // self.patch, x.shape[-1] // self.patch))
        value = 1.0 if self.scale_mode == "fine" else 0.0
        mask = x.new_full((x.shape[0], *grid), value)
        return GateDecision(torch.logit(mask, eps=1e-6), mask, mask)

    def _positions(self, fine_grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Position embeddings: fine [1, Hf, Wf, C], coarse [1, Hc, Wc, C] (the 2x2 mean of the fine ones) and the
        class token's [1, 1, C], the learned grid resampled to `fine_grid`."""
        (height, width), (rows, cols) = fine_grid, self.coarse_grid(fine_grid)
        pos = resample_abs_pos_embed(
            self.pos_embed, new_size=fine_grid, old_size=self.patch_embed.grid_size, num_prefix_tokens=1
        )
        fine_pos = pos[:, 1:].reshape(1, height, width, -1)
        coarse_pos = F.avg_pool2d(fine_pos[:, : 2 * rows, : 2 * cols].permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        return fine_pos, coarse_pos, pos[:, :1]

    def _embed(self, x: torch.Tensor, with_coarse: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Fine tokens [B, Hf, Wf, C], coarse tokens [B, Hc, Wc, C] (or None) and the class token [B, 1, C],
        each with its position embedding."""
        fine = self.patch_embed(x)
        batch, height, width, _ = fine.shape
        fine_pos, coarse_pos, cls_pos = self._positions((height, width))
        fine = fine + fine_pos
        cls = (self.cls_token + cls_pos).expand(batch, -1, -1)
        coarse = None
        if with_coarse:
            rows, cols = self.coarse_grid((height, width))
            region = 2 * self.patch
            pixels = F.avg_pool2d(x[..., : rows * region, : cols * region], 2)  # = bilinear resize by 1/2
            coarse = self.patch_embed(pixels) + coarse_pos
        return fine, coarse, cls

    def _embeds_plain_patches(self) -> bool:
        """True when the patch embedding is one p x p, stride-p convolution, so a token is a linear map of its
        patch's pixels (what `_embed_kept` relies on)."""
        proj, p = self.patch_embed.proj, self.patch
        return (
            isinstance(proj, torch.nn.Conv2d)
            and proj.kernel_size == (p, p)
            and proj.stride == (p, p)
            and proj.padding == (0, 0)
            and proj.dilation == (1, 1)
            and proj.groups == 1
            and not getattr(self.patch_embed, "dynamic_img_pad", False)
        )

    def _embed_kept(
        self, x: torch.Tensor, layout: MixedScaleLayout
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed only the tokens the gate keeps (dropped path): tokens [B, L, C] with positions, their slot index
        [B, L], valid [B, L] and the class token [B, 1, C]. Equals gathering from `_embed`'s full token maps, without
        embedding the fine cells of coarse regions."""
        index, valid = kept_slots(layout.occupied)
        pixels, is_fine, region = kept_patch_pixels(x, layout, index, self.patch)
        proj = self.patch_embed.proj
        tokens = self.patch_embed.norm(F.linear(pixels, proj.weight.flatten(1), proj.bias))
        fine_pos, coarse_pos, cls_pos = self._positions(layout.fine_grid)
        pos = torch.where(is_fine[..., None], fine_pos.flatten(1, 2)[0][index], coarse_pos.flatten(1, 2)[0][region])
        cls = (self.cls_token + cls_pos).expand(x.shape[0], -1, -1)
        return tokens + pos, index, valid, cls

    def _key_mask(self, valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Key mask [B, 1, 1, 1 + L] for the class token and `valid` [B, L]: bool for SDPA, additive otherwise."""
        keys = torch.cat((valid.new_ones(valid.shape[0], 1), valid), dim=1)[:, None, None, :]
        if getattr(self.blocks[0].attn, "fused_attn", False):
            return keys
        return torch.zeros(keys.shape, dtype=dtype, device=keys.device).masked_fill(~keys, torch.finfo(dtype).min)

    def _tokenize(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, MixedScaleLayout, torch.Tensor | None]:
        """Tokens [B, 1 + L, C], their attention mask (or None), the layout and the slot index of each token
        (None when the tokens are the Hf*Wf slots themselves)."""
        decision = self.decide_scales(x)
        if not _tracing():
            self._last_decision = decision
        layout = mixed_scale_layout(decision.mask, (x.shape[-2] // self.patch, x.shape[-1] // self.patch))
        # meta tensors (shape-only model checks) have no values to drop tokens by: they take the masked path
        dropping = (
            not self.training
            and self.token_path == "drop"
            and self.scale_mode != "fine"
            and not _tracing()
            and x.device.type != "meta"
        )
        if dropping and self._embeds_plain_patches():
            tokens, index, valid, cls = self._embed_kept(x, layout)
            if x.shape[0] == 1 or bool(valid.all()):
                valid = None
        else:
            fine, coarse, cls = self._embed(x, with_coarse=self.scale_mode != "fine")
            if coarse is None:  # every region fine: the plain ViT sequence
                tokens, index, valid = fine.flatten(1, 2), None, None
            else:
                tokens = mixed_scale_slots(fine, coarse, layout)
                index, valid = None, layout.occupied
                if dropping:
                    tokens, index, valid = compact_slots(tokens, layout.occupied)
                    if x.shape[0] == 1 or bool(valid.all()):
                        valid = None
        tokens = self.pos_drop(torch.cat((cls, tokens), dim=1))
        mask = None if valid is None else self._key_mask(valid, tokens.dtype)
        return tokens, mask, layout, index

    def _dense(self, tokens: torch.Tensor, layout: MixedScaleLayout, index: torch.Tensor | None) -> torch.Tensor:
        """Patch tokens [B, L, C] back to one token per fine cell [B, Hf*Wf, C] (coarse tokens unpooled)."""
        if index is not None:
            tokens = scatter_slots(tokens, index, layout.fine_grid[0] * layout.fine_grid[1])
        if self.scale_mode == "fine":
            return tokens
        return unpool_slots(tokens, layout)

    def _block(self, block: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(block, x, mask)
        return block(x, attn_mask=mask)

    # ----------------------------------------------------------------------------------------------- forwards
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens [B, 1 + Hf*Wf, C]: the class token, then one per fine cell (coarse ones unpooled)."""
        tokens, mask, layout, index = self._tokenize(x)
        for block in self.blocks:
            tokens = self._block(block, tokens, mask)
        tokens = self.norm(tokens)
        return torch.cat((tokens[:, :1], self._dense(tokens[:, 1:], layout, index)), dim=1)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Final features (as forward_features) and dense outputs of the selected blocks.

        indices: last n blocks if int, all if None, or explicit block indices. Intermediates are one token per fine
        cell (coarse tokens unpooled): NCHW [B, C, H/16, W/16] or NLC; return_prefix_tokens adds the class token.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError("output_fmt must be 'NCHW' or 'NLC'")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        tokens, mask, layout, index = self._tokenize(x)
        blocks = self.blocks[: max_index + 1] if stop_early else self.blocks
        intermediates, prefixes = [], []
        for i, block in enumerate(blocks):
            tokens = self._block(block, tokens, mask)
            if i in take_indices:
                y = self.norm(tokens) if norm else tokens
                prefixes.append(y[:, :1])
                intermediates.append(self._dense(y[:, 1:], layout, index))
        if output_fmt == "NCHW":
            height, width = layout.fine_grid
            intermediates = [
                y.reshape(y.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates
            ]
        if return_prefix_tokens:
            intermediates = list(zip(intermediates, prefixes))
        if intermediates_only:
            return intermediates
        tokens = self.norm(tokens)
        return torch.cat((tokens[:, :1], self._dense(tokens[:, 1:], layout, index)), dim=1), intermediates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool != "token" or self.attn_pool is not None:
            return self.forward_head(self.forward_features(x))
        tokens, mask, _, _ = self._tokenize(x)  # the head reads the class token only: no dense patch tokens
        for block in self.blocks:
            tokens = self._block(block, tokens, mask)
        return self.forward_head(self.norm(tokens[:, :1]))

    # -------------------------------------------------------------------------------------------- gate results
    def last_gate(self) -> GateDecision | None:
        """The gate decision of the last (eager) forward: logits, probabilities, fine mask, each [B, Hc, Wc]."""
        return self._last_decision

    def auxiliary_loss(self) -> torch.Tensor | None:
        """The generalized batch-shaping loss of the last forward's gate probabilities (None without a target)."""
        if self.gate_loss is None or self._last_decision is None or self.scale_mode != "gate":
            return None
        return self.gate_loss(self._last_decision.probs)


def checkpoint_filter_fn(state_dict: dict[str, Any], model: MixedScaleVisionTransformer) -> dict[str, torch.Tensor]:
    """Load a timm ViT / DeiT (or official DeiT) state dict into the MSViT backbone; the gate stays new.

    Unwraps {'model': ...} / {'state_dict': ...} and `module.` prefixes; drops DeiT's distillation token and head
    (and its position-embedding entry); resamples the position embedding to the model's grid; fills the gate and
    batch-shaping parameters (absent from a plain ViT) from the model's own initialisation, so a strict load works.
    """
    state_dict = clean_checkpoint(state_dict)
    own = model.state_dict()
    distilled = "dist_token" in state_dict
    out = {}
    for key, value in state_dict.items():
        if key == "dist_token" or key.startswith("head_dist."):
            continue
        if key == "pos_embed":
            if distilled:
                value = torch.cat((value[:, :1], value[:, 2:]), dim=1)
            if value.shape != own["pos_embed"].shape:
                value = resample_abs_pos_embed(value, new_size=model.patch_embed.grid_size, num_prefix_tokens=1)
        out[key] = value
    for key, value in own.items():
        if key.startswith(("scale_gate.", "gate_loss.")) and key not in out:
            out[key] = value
    return out


def to_plain_vit(model: MixedScaleVisionTransformer) -> VisionTransformer:
    """The plain timm VisionTransformer with the same backbone weights: every region fine, no gate (any input size)."""
    vit = VisionTransformer(
        img_size=model.patch_embed.img_size,
        patch_size=model.patch,
        in_chans=model.in_chans,
        num_classes=model.num_classes,
        global_pool=model.global_pool,
        embed_dim=model.embed_dim,
        depth=len(model.blocks),
        num_heads=model.blocks[0].attn.num_heads,
        mlp_ratio=model.blocks[0].mlp.fc1.out_features / model.embed_dim,
        qkv_bias=model.blocks[0].attn.qkv.bias is not None,
        dynamic_img_size=True,
        weight_init="skip",
    )
    backbone = {k: v for k, v in model.state_dict().items() if not k.startswith(("scale_gate.", "gate_loss."))}
    vit.load_state_dict(backbone, strict=True)
    return vit.train(model.training)


def _create_msvit(variant: str, pretrained: bool = False, **kwargs: Any) -> MixedScaleVisionTransformer:
    # features_only: the last 3 blocks, /16 each (as timm's ViT)
    return build_model(MixedScaleVisionTransformer, variant, pretrained, checkpoint_filter_fn, 3, **kwargs)


PAPER = ("arXiv:2307.02321", "MSViT: Dynamic Mixed-Scale Tokenization for Vision Transformers")


def _cfg(**kwargs: Any) -> dict[str, Any]:
    sizes = dict(min_input_size=(3, 32, 32), fixed_input_size=False)
    layers = dict(first_conv="patch_embed.proj", classifier="head")
    return pretrained_cfg(dict(**sizes, **layers, license="apache-2.0"), kwargs, PAPER)


# No MSViT weights were released (only the batch-shaping loss is public). The `deit_fb_in1k` tags load the DeiT
# ImageNet-1k backbone exactly as timm publishes it (timm/models/deit.py default_cfgs: `deit_{tiny,small}_patch16_224
# .fb_in1k`, hf_hub_id 'timm/' + name, url the facebookresearch/deit release); the scale gate starts fresh.
def _deit_backbone(name: str, file_hash: str, size: str) -> dict[str, Any]:
    """timm's `{name}.fb_in1k` DeiT weights (the facebookresearch/deit release file) for the backbone alone."""
    return _cfg(
        hf_hub_id=f"timm/{name}.fb_in1k",
        url=f"https://dl.fbaipublicfiles.com/deit/{name}-{file_hash}.pth",
        origin_url="https://github.com/facebookresearch/deit",
        description=f"DeiT-{size} backbone weights",
        notes=("DeiT backbone only: no MSViT gate weights were published (the gate starts fresh)",),
    )


default_cfgs = generate_default_cfgs(
    {
        "msvit_tiny_patch16_224.deit_fb_in1k": _deit_backbone("deit_tiny_patch16_224", "a1311bcf", "Ti"),
        "msvit_small_patch16_224.deit_fb_in1k": _deit_backbone("deit_small_patch16_224", "cd65a155", "S"),
    }
)

# Backbone = DeiT-Ti / DeiT-S (timm deit_tiny/small_patch16_224: 5.717M / 22.051M); + the gate MLP (0.201M).
# GMACs depend on the image (the gate's choice), so none is recorded: tools/analysis/benchmark_msvit.py counts them
# image by image over a data set (visiongates.flops). On the meta device there are no values to gate by, so MSViT takes
# its masked path there (every token computed), which is no figure of the model's compute.
_SOURCE = "DeiT backbone params (timm deit_*_patch16_224) + gate MLP 3072-64-64-1, counted here; GMACs input-dependent"
model_facts = {
    "msvit_tiny_patch16_224": ModelFacts(5.918, _SOURCE),
    "msvit_small_patch16_224": ModelFacts(22.252, _SOURCE),
}


@register_model
def msvit_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> MixedScaleVisionTransformer:
    """MSViT on DeiT-Ti (192 wide, 12 blocks, 3 heads); loads timm `deit_tiny_patch16_224` / `vit_tiny` weights."""
    args = dict(patch_size=16, embed_dim=192, depth=12, num_heads=3)
    return _create_msvit("msvit_tiny_patch16_224", pretrained, **dict(args, **kwargs))


@register_model
def msvit_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> MixedScaleVisionTransformer:
    """MSViT on DeiT-S (384 wide, 12 blocks, 6 heads); loads timm `deit_small_patch16_224` / `vit_small` weights."""
    args = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6)
    return _create_msvit("msvit_small_patch16_224", pretrained, **dict(args, **kwargs))
