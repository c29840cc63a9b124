"""MAXIM: multi-axis gated MLP for image restoration.

Tu et al., "MAXIM: Multi-Axis MLP for Image Processing", CVPR 2022 (arXiv:2201.02973); official JAX/Flax code:
google-research/maxim (maxim/models/maxim.py, run_eval.py).

Each stage is a 3-level UNet: encoder blocks of (multi-axis gated MLP block, RCAB) pairs, a bottleneck of (MAB, RDCAB)
pairs, cross-gating blocks that fuse all encoder levels (resized to each level) with the upsampled global feature,
and decoder blocks fed by all cross-gated skips. Stages are chained by supervised attention modules (SAM) and by
cross-gating of the previous stage's encoder + decoder features. With `num_supervision_scales` > 1 the input is also
fed (nearest-downsampled) at the lower levels and an image is produced at each of those scales.

Variants (official `Model(variant=...)`): S-1/2/3 have 32 features and 1/2/3 stages, M-1/2/3 have 64. The released
task checkpoints use 3 supervision scales: `maxim_3s` (= S-3, denoising SIDD / deblurring GoPro, REDS, RealBlur) and
`maxim_2s` (= S-2, deraining, dehazing, enhancement), one tag per task and dataset (`maxim_3s.denoising_sidd`, ...).
`timm.create_model('maxim_3s.denoising_sidd', pretrained=True)` fetches the official checkpoint.npz;
`pretrained_cfg_overlay=dict(file='checkpoint.npz')` loads a local copy (timm then calls `MAXIM.load_pretrained`,
which converts with `visiongates.models.maxim_flax`).

Parity with the Flax weights needs the official operators, which are this model's defaults: tanh-approximated GELU
(`act_layer='gelu_tanh'`), LayerNorm eps 1e-6 (`norm_eps`), antialiased bilinear downscaling (`antialias=True`) and
half-pixel nearest downscaling of the input (`nearest_mode='nearest-exact'`). `act_layer='gelu'`, `antialias=False`
and `nearest_mode='nearest'` give the plain PyTorch operators (e.g. for exporters without antialiased resize).

Inputs are NCHW images in [0, 1] of any size: they are reflect-padded to a multiple of 64 as `run_eval.py` does
(odd sizes first made even, then centred padding) and the outputs are cropped back.
"""

import math
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import get_act_layer, register_notrace_function
from timm.models import checkpoint, generate_default_cfgs, load_state_dict, register_model
from timm.models._features import feature_take_indices
from torch import nn

from visiongates.checkpoint import check_state_dict, clean_checkpoint
from visiongates.layers.maxim_blocks import (
    SAM,
    BottleneckBlock,
    ConvNhwc,
    CrossGatingBlock,
    DecoderBlock,
    EncoderBlock,
    MaximBlockCfg,
    MultiScaleFusion,
    OutputConv,
)

from ._registry import ModelFacts, build_model, pretrained_cfg
from ._timm_api import Indices, Levels, TimmModelApi

__all__ = ["MAXIM", "MaximStage", "checkpoint_filter_fn", "reflect_pad", "pad_amounts"]

Size2 = tuple[int, int]
# a stage's features for the next one, per level: encoder outputs, decoder outputs, SAM features
StageFeatures = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]


def pad_amounts(size: int, multiple: int) -> tuple[int, int, int]:
    """(extra, before, after) reflect padding of one side length, as in official run_eval.py: an odd size first
    gets one row at the end (`make_shape_even`), then the even size is padded symmetrically to the next multiple."""
    extra = size % 2
    even = size + extra
    pad = (-even) % multiple
    return extra, pad // 2, pad // 2


def _reflect_pad_1d(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Reflect-pad one spatial dim of an NCHW tensor; pads longer than the size are done in several reflections."""
    while before or after:
        size = x.shape[dim]
        b, a = min(before, size - 1), min(after, size - 1)
        if size == 1:
            raise ValueError("cannot reflect-pad a dimension of size 1")
        x = F.pad(x, [b, a, 0, 0] if dim == 3 else [0, 0, b, a], mode="reflect")
        before, after = before - b, after - a
    return x


@register_notrace_function  # pads by the input's size: one call in timm's FX graphs, run for each input
def reflect_pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, Size2]:
    """Reflect-pad an NCHW tensor to a multiple of `multiple` (official scheme); returns it and the (top, left) offset
    at which the original image sits."""
    offsets: list[int] = []
    for dim in (2, 3):
        extra, before, after = pad_amounts(x.shape[dim], multiple)
        x = _reflect_pad_1d(x, 0, extra, dim)
        x = _reflect_pad_1d(x, before, after, dim)
        offsets.append(before)
    return x, (offsets[0], offsets[1])


@torch.jit.unused  # TorchScript: never called (is_scripting() is checked first), not compiled
def _fx_proxy(value: bool) -> bool:
    """Whether a forward argument is an FX Proxy: symbolic tracing passes every argument as one."""
    return isinstance(value, torch.fx.Proxy)


class MaximStage(nn.Module):
    """One MAXIM stage: multi-scale input convs (fused with the previous stage's SAM features by cross-gating), a
    3-level encoder, bottleneck, cross-gated multi-level skips, decoder and the per-scale SAM / output heads."""

    def __init__(
        self,
        dims: list[int],
        sizes: list[tuple[Size2, Size2]],
        num_scales: int,
        num_bottleneck_blocks: int,
        cfg: MaximBlockCfg,
        in_chans: int = 3,
        out_chans: int = 3,
        first: bool = True,
        last: bool = True,
        device=None,
        dtype=None,
    ):
        """dims: channels of each level; sizes: the MABs' (block_size, grid_size) at each level, then in the
        bottleneck; first / last: whether the stage follows another (cross-gating with its features) and whether
        its heads emit images only (OutputConv) instead of SAM features too; a lone stage is both."""
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        depth = len(dims)
        self.depth, self.num_scales = depth, num_scales
        self.grad_checkpointing = False
        self.input_convs = nn.ModuleList(
            [ConvNhwc(in_chans, dims[i], 3, bias=cfg.bias, **dd) for i in range(num_scales)]
        )
        self.input_fuse = (
            None
            if first
            else nn.ModuleList(
                [
                    CrossGatingBlock(dims[i], dims[i], dims[i], *sizes[i], cfg, upsample_y=False, **dd)
                    for i in range(num_scales)
                ]
            )
        )
        self.encoders = nn.ModuleList()
        for i in range(depth):
            in_chs = dims[0] if i == 0 else dims[i - 1]
            in_chs += dims[i] if i < num_scales else 0
            self.encoders.append(EncoderBlock(in_chs, dims[i], *sizes[i], cfg, cross_gating=not first, **dd))
        self.bottleneck = nn.Sequential(
            *[BottleneckBlock(dims[-1], dims[-1], *sizes[depth], cfg, **dd) for _ in range(num_bottleneck_blocks)]
        )
        # level i fuses every encoder level j (resized by 2**(j - i)) and cross-gates it with the global feature
        self.skip_fusions = nn.ModuleList(
            [MultiScaleFusion(dims, [j - i for j in range(depth)], dims[i], cfg, **dd) for i in range(depth)]
        )
        self.cross_gates = nn.ModuleList(
            [
                CrossGatingBlock(depth * dims[i], dims[min(i + 1, depth - 1)], dims[i], *sizes[i], cfg, **dd)
                for i in range(depth)
            ]
        )
        # decoder level i fuses every cross-gated skip, coarsest first (the official concatenation order)
        self.dec_fusions = nn.ModuleList(
            [
                MultiScaleFusion(dims[::-1], [depth - 1 - j - i for j in range(depth)], dims[i], cfg, **dd)
                for i in range(depth)
            ]
        )
        self.decoders = nn.ModuleList(
            [
                DecoderBlock(dims[min(i + 1, depth - 1)], depth * dims[i], dims[i], *sizes[i], cfg, **dd)
                for i in range(depth)
            ]
        )
        residual = in_chans == out_chans
        head = OutputConv if last else SAM
        self.heads = nn.ModuleList([head(dims[i], out_chans, residual, cfg.bias, **dd) for i in range(num_scales)])

    def _checkpointing(self) -> bool:
        return self.grad_checkpointing and torch.is_grad_enabled()

    def forward_encoder(
        self,
        images: list[torch.Tensor],
        prev: StageFeatures | None = None,
        max_level: int | None = None,
    ) -> list[torch.Tensor]:
        """Encoder (and bottleneck when `max_level` is None or `depth`): returns the skip features of each level,
        then the bottleneck output, all channels-last."""
        max_level = self.depth if max_level is None else max_level
        x_scales: list[torch.Tensor] = []
        for i, conv in enumerate(self.input_convs):
            x_scales.append(conv(images[i]))
        if self.input_fuse is not None:
            if prev is None:
                raise ValueError("a stage after the first needs the previous stage's features")
            for i, fuse in enumerate(self.input_fuse):
                x_scales[i] = fuse(x_scales[i], prev[2][i])[0]
        feats: list[torch.Tensor] = []
        x = x_scales[0]
        # TorchScript indexes a ModuleList by literals only: loop over the modules, not over level numbers
        for i, encoder in enumerate(self.encoders):
            if i <= max_level:
                skip = x_scales[i] if i < self.num_scales else None
                cond = None if prev is None else prev[0][i] + prev[1][i]
                if self._checkpointing() and not torch.jit.is_scripting():
                    bridge = checkpoint(encoder, x, skip, cond)
                else:
                    bridge = encoder(x, skip, cond)
                feats.append(bridge)
                if encoder.down is not None:
                    x = encoder.down(bridge)
        if max_level >= self.depth:
            if self._checkpointing() and not torch.jit.is_scripting():
                x = checkpoint(self.bottleneck, x)
            else:
                x = self.bottleneck(x)
            feats.append(x)
        return feats

    def forward(
        self,
        images: list[torch.Tensor],
        prev: StageFeatures | None = None,
    ) -> tuple[list[torch.Tensor], StageFeatures]:
        """images: the input at each supervision scale (channels-last, full resolution first); prev: the previous
        stage's (encoder features, decoder features, SAM features) per level. Returns the restored image at each
        scale (coarsest first, as the official outputs) and this stage's features for the next one (no SAM
        features after the last stage, whose heads emit images only)."""
        feats = self.forward_encoder(images, prev)
        encs, x = feats[:-1], feats[-1]
        # Levels run deepest first. TorchScript indexes a ModuleList by literals only (and cannot call the modules
        # of a reversed slice): each pass over a level's modules picks the one of the current level.
        skips, g = list(encs), x  # every entry is replaced, as are those of `decs`
        for level in range(self.depth - 1, -1, -1):
            for i, (fusion, gate) in enumerate(zip(self.skip_fusions, self.cross_gates)):
                if i == level:
                    skips[i], g = gate(fusion(encs), g)
        skips = skips[::-1]
        decs, sams, outputs = list(encs), [], []
        for level in range(self.depth - 1, -1, -1):
            for i, (fusion, decoder) in enumerate(zip(self.dec_fusions, self.decoders)):
                if i == level:
                    if self._checkpointing() and not torch.jit.is_scripting():
                        x = checkpoint(decoder, x, fusion(skips))
                    else:
                        x = decoder(x, fusion(skips))
                    decs[i] = x
            for i, head in enumerate(self.heads):
                if i == level:
                    sam, image = head(x, images[i])
                    if sam is not None:
                        sams.append(sam)
                    outputs.append(image)
        return outputs, (encs, decs, sams[::-1])


class MAXIM(TimmModelApi, nn.Module):
    """MAXIM restoration model (multi-stage, multi-scale). `forward` returns the restored image, NCHW, same size as
    the input; `forward(x, return_all=True)` returns every stage's images at every supervision scale."""

    output_fmts = ("NCHW", "NHWC")

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        out_chans: int | None = None,
        features: int = 32,
        depth: int = 3,
        num_stages: int = 1,
        num_bottleneck_blocks: int = 2,
        num_supervision_scales: int = 1,
        block_size_hr: Size2 = (16, 16),
        grid_size_hr: Size2 = (16, 16),
        block_size_lr: Size2 = (8, 8),
        grid_size_lr: Size2 = (8, 8),
        high_res_levels: int = 2,
        drop_rate: float = 0.0,
        act_layer: str | type[nn.Module] = "gelu_tanh",
        nearest_mode: str = "nearest-exact",
        zero_init_last: bool = False,
        device=None,
        dtype=None,
        **block_kwargs: Any,
    ):
        """
        Args:
            in_chans, out_chans: image channels (`out_chans` None: `in_chans`; outputs add the input at each scale
                when the two are equal).
            num_classes: must be 0 (image-to-image model; accepted for timm's builder).
            features: channels at full resolution (doubled at each level).
            depth: UNet levels (the official models use 3).
            num_stages: restoration stages chained by SAM and cross-gating.
            num_bottleneck_blocks: bottleneck blocks per stage.
            num_supervision_scales: scales with an image input and output (1 to `depth`).
            block_size_hr, grid_size_hr, block_size_lr, grid_size_lr: local window and global grid of the MABs.
            high_res_levels: levels using the `*_hr` block/grid sizes (official `high_res_stages`).
            drop_rate: dropout in the gMLP and cross-gating blocks.
            act_layer: activation of the MLP blocks ('gelu_tanh' as in Flax's `nn.gelu`, or 'gelu').
            nearest_mode: downscaling of the input image for lower scales ('nearest-exact' = JAX half-pixel).
            zero_init_last: zero the convs that emit images, so an untrained model returns its input (the official
                LeCun-normal init adds a large random image: activations grow through the nested residuals).
            device, dtype: factory arguments of every parameter.
            **block_kwargs: the other settings every block shares, fields of `MaximBlockCfg` with the official
                defaults: num_groups, block_gmlp_factor, grid_gmlp_factor, input_proj_factor, channels_reduction,
                lrelu_slope, bias, norm_eps (Flax: 1e-6), antialias (of the multi-level skips' downscaling, as
                `jax.image.resize`).
        """
        super().__init__()
        if num_classes:
            raise ValueError("MAXIM is an image-to-image model: num_classes must be 0")
        if not 1 <= num_supervision_scales <= depth:
            raise ValueError(f"num_supervision_scales must be in [1, {depth}], got {num_supervision_scales}")
        dd = {"device": device, "dtype": dtype}
        out_chans = in_chans if out_chans is None else out_chans
        self.in_chans, self.out_chans, self.num_classes = in_chans, out_chans, 0
        self.features, self.depth, self.num_stages = features, depth, num_stages
        cfg = MaximBlockCfg(drop=drop_rate, act_layer=get_act_layer(act_layer), **block_kwargs)
        self.num_groups, self.num_bottleneck_blocks = cfg.num_groups, num_bottleneck_blocks
        self.num_supervision_scales = num_supervision_scales
        self.nearest_mode = nearest_mode
        self.grad_checkpointing = False
        self.pruned = False
        dims = [features * 2**i for i in range(depth)]
        # the MABs' (block_size, grid_size) at each level, then in the bottleneck. Low-resolution levels use
        # `grid_size_lr` where the official code passes `block_size_lr` as the grid size (the two are equal, (8, 8),
        # in every released configuration).
        hr, lr = (tuple(block_size_hr), tuple(grid_size_hr)), (tuple(block_size_lr), tuple(grid_size_lr))
        sizes = [hr if i < high_res_levels else lr for i in range(depth)] + [lr]
        stage_args = (dims, sizes, num_supervision_scales, num_bottleneck_blocks, cfg, in_chans, out_chans)
        self.stages = nn.ModuleList(
            [MaximStage(*stage_args, first=s == 0, last=s == num_stages - 1, **dd) for s in range(num_stages)]
        )
        if zero_init_last:
            for stage in self.stages:
                for head in stage.heads:
                    conv = head.conv_img if isinstance(head, SAM) else head.conv
                    nn.init.zeros_(conv.weight)
                    if conv.bias is not None:
                        nn.init.zeros_(conv.bias)
        # spatial size every level's windows and grids divide (64 for the official configs)
        self.pad_multiple = math.lcm(*[2**i * max(*block, *grid) for i, (block, grid) in enumerate(sizes)])
        self.feature_info = [
            dict(num_chs=dims[i], reduction=2**i, module=f"stages.0.encoders.{i}") for i in range(depth)
        ] + [dict(num_chs=dims[-1], reduction=2**depth, module="stages.0.bottleneck")]
        self.num_features = self.head_hidden_size = dims[-1]

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Coarse: one group per stage; fine: per stage, each encoder level, bottleneck block and decoder level."""
        parts = ("(?:input_fuse|encoders)", "bottleneck", "(?:skip_fusions|cross_gates|dec_fusions|decoders|heads)")
        fine = [(rf"^stages\.(\d+)\.{part}\.(\d+)", None) for part in parts]
        return dict(stem=r"^stages\.0\.input_convs", blocks=r"^stages\.(\d+)" if coarse else fine)

    def _input_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input at each supervision scale, channels-last (official: jax.image.resize 'nearest')."""
        h, w = x.shape[-2:]
        scales = range(1, self.num_supervision_scales)
        images = [x] + [F.interpolate(x, size=(h >> i, w >> i), mode=self.nearest_mode) for i in scales]
        return [image.permute(0, 2, 3, 1) for image in images]

    def forward_restore(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Run every stage on an NCHW input whose size is a multiple of `pad_multiple` (no padding). Returns
        outputs[stage][k], NCHW, with scales coarsest first: outputs[-1][-1] is the final full-resolution image."""
        h, w = x.shape[-2:]
        if h % self.pad_multiple or w % self.pad_multiple:
            raise ValueError(f"forward_restore needs H, W multiples of {self.pad_multiple}, got {h}x{w}")
        return self._forward_stages(x)

    def _forward_stages(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """forward_restore without the size check (`forward` pads first; FX could not evaluate the check)."""
        if self.pruned:
            raise RuntimeError("the restoration path was pruned by prune_intermediate_layers()")
        images = self._input_pyramid(x)
        outputs: list[list[torch.Tensor]] = []
        prev: StageFeatures | None = None
        for stage in self.stages:
            out, prev = stage(images, prev)
            outputs.append([o.permute(0, 3, 1, 2) for o in out])
        return outputs

    def forward(self, x: torch.Tensor, return_all: bool = False) -> torch.Tensor | list[list[torch.Tensor]]:
        """Restore an NCHW image batch of any size (reflect-padded to `pad_multiple`, cropped back).

        Returns the final stage's full-resolution image (same shape as `x`), or with `return_all=True` the nested
        list outputs[stage][scale] (coarsest scale first) cropped to ceil(H / 2**s) x ceil(W / 2**s) at scale s.
        An FX graph of this method (timm's FX feature extraction) returns the final image: `return_all` is a
        Python switch, which symbolic tracing sees as a Proxy and does not record.
        """
        h, w = x.shape[-2:]
        padded, (top, left) = reflect_pad(x, self.pad_multiple)
        outputs = self._forward_stages(padded)
        if (not torch.jit.is_scripting() and _fx_proxy(return_all)) or not return_all:
            return outputs[-1][-1][..., top : top + h, left : left + w]
        cropped: list[list[torch.Tensor]] = []
        for stage_outputs in outputs:
            row: list[torch.Tensor] = []
            for out in stage_outputs:
                s = padded.shape[-1] // out.shape[-1]
                t, l_ = top // s, left // s
                row.append(out[..., t : t + -(-h // s), l_ : l_ + -(-w // s)])
            cropped.append(row)
        return cropped

    def _levels(
        self, x: torch.Tensor, indices: Indices, norm: bool, stop_early: bool, output_fmt: str, final: bool
    ) -> Levels:
        """Encoder features of the first stage: each level's skip feature (reductions 1, 2, 4) and the bottleneck
        output (reduction 8). The input is reflect-padded at the bottom/right to `pad_multiple` and each feature is
        cropped to ceil(H / reduction) x ceil(W / reduction). `norm` has no effect (no final norm)."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.pad_multiple, (-w) % self.pad_multiple
        x = _reflect_pad_1d(_reflect_pad_1d(x, 0, ph, 2), 0, pw, 3)
        max_level = max_index if stop_early or self.pruned else None
        feats = self.stages[0].forward_encoder(self._input_pyramid(x), max_level=max_level)
        for i, f in enumerate(feats):
            r = self.feature_info[i]["reduction"]
            f = f[:, : -(-h // r), : -(-w // r)]
            feats[i] = f.permute(0, 3, 1, 2) if output_fmt == "NCHW" else f
        return feats[-1], [feats[i] for i in take_indices]

    def prune_intermediate_layers(
        self,
        indices: int | list[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Keep only what the requested encoder features need: the first stage's input convs and encoder levels."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        stage = self.stages[0]
        self.stages = self.stages[:1]
        for name in ("input_fuse", "skip_fusions", "cross_gates", "dec_fusions", "decoders", "heads"):
            setattr(stage, name, None)
        if max_index < self.depth:
            stage.bottleneck = nn.Identity()
            stage.encoders = stage.encoders[: max_index + 1]
            stage.encoders[-1].down = None
        self.pruned = True
        return take_indices

    @torch.jit.ignore
    def load_pretrained(self, checkpoint_path: str, prefix: str = "") -> None:
        """Load an official Flax checkpoint (.npz) or our own state dict file (weights_only). timm calls this (its
        `custom_load`) for the released tags and for `pretrained=True, pretrained_cfg_overlay=dict(file=X.npz)`."""
        if str(checkpoint_path).endswith(".npz"):
            from .maxim_flax import convert_flax_params, load_flax_npz

            state_dict = convert_flax_params(load_flax_npz(checkpoint_path), self)
        else:
            state_dict = checkpoint_filter_fn(load_state_dict(checkpoint_path), self)
        check_state_dict(self, state_dict, source=f"'{checkpoint_path}'")
        self.load_state_dict(state_dict, strict=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The first stage's bottleneck output (NCHW, reduction 8): the deepest encoder feature."""
        return self.forward_intermediates(x, indices=1, intermediates_only=True)[0]


def checkpoint_filter_fn(state_dict: dict[str, Any], model: MAXIM) -> dict[str, torch.Tensor]:
    """Accept our own state dicts (optionally under 'state_dict' / 'model') and official Flax parameter trees
    (flattened '/'-joined paths, with or without the 'opt/target/' prefix, e.g. a loaded checkpoint.npz)."""
    state_dict = clean_checkpoint(state_dict)
    if any("/" in k for k in state_dict):
        from .maxim_flax import convert_flax_params

        return convert_flax_params(state_dict, model)
    return state_dict


def _create_maxim(variant: str, pretrained: bool = False, **kwargs: Any) -> MAXIM:
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    if str(overlay.get("file") or "").endswith(".npz"):  # a local copy of a released Flax file: timm's custom_load
        kwargs["pretrained_cfg_overlay"] = {"custom_load": True, **overlay}
    return build_model(MAXIM, variant, pretrained, checkpoint_filter_fn, (0, 1, 2, 3), **kwargs)


PAPER = ("arXiv:2201.02973", "MAXIM: Multi-Axis MLP for Image Processing", "https://github.com/google-research/maxim")


def _cfg(**kwargs: Any) -> dict[str, Any]:
    image_to_image = dict(num_classes=0, classifier=None, input_size=(3, 256, 256), crop_pct=1.0)
    unnormalised = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    family = dict(**image_to_image, **unnormalised, first_conv="stages.0.input_convs.0", license="apache-2.0")
    return pretrained_cfg(family, kwargs, PAPER)


# The official checkpoints (google-research/maxim README, "Results and Pre-trained models"): one Flax checkpoint.npz
# per task and dataset on Google Cloud Storage, gs://gresearch/maxim/ckpt/<Task>/<Dataset>/ (the README links the
# bucket's browser pages; the file name checkpoint.npz and its public https path are those used by the README's TF
# port, sayakpaul/maxim-tf convert_to_tf.py). MAXIM-3S for denoising and deblurring, MAXIM-2S for the others
# (run_eval.py _MODEL_VARIANT_DICT). The README's PSNR / SSIM are on the test set named by the tag. Loaded through
# timm's custom_load (`MAXIM.load_pretrained` -> visiongates.models.maxim_flax); the url's second element is the
# cache file name, since every release is called checkpoint.npz. None of these URLs could be checked here.
_GCS = "https://storage.googleapis.com/gresearch/maxim/ckpt/"


def _released(folder: str, task: str, psnr: float, ssim: float) -> dict[str, Any]:
    cache_name = "maxim_" + folder.lower().replace("/", "_").replace("-", "_") + ".npz"
    return _cfg(
        url=(f"{_GCS}{folder}/checkpoint.npz", cache_name), custom_load=True,
        description=f"{task}: PSNR {psnr} / SSIM {ssim} (official README)",
    )  # fmt: skip


default_cfgs = generate_default_cfgs(
    {
        "maxim_s1": _cfg(),
        "maxim_s2": _cfg(),
        "maxim_s3": _cfg(),
        "maxim_m1": _cfg(),
        "maxim_m2": _cfg(),
        "maxim_m3": _cfg(),
        "maxim_3s.denoising_sidd": _released(
            "Denoising/SIDD", "denoising, SIDD (also DND 39.84 / 0.954)", 39.96, 0.960
        ),
        "maxim_3s.deblurring_gopro": _released(
            "Deblurring/GoPro", "deblurring, GoPro (also HIDE 32.83 / 0.956)", 32.86, 0.961
        ),
        "maxim_3s.deblurring_reds": _released("Deblurring/REDS", "deblurring, REDS", 28.93, 0.865),
        "maxim_3s.deblurring_realblur_r": _released("Deblurring/RealBlur_R", "deblurring, RealBlur-R", 39.45, 0.962),
        "maxim_3s.deblurring_realblur_j": _released("Deblurring/RealBlur_J", "deblurring, RealBlur-J", 32.84, 0.935),
        "maxim_2s.deraining_rain13k": _released("Deraining/Rain13k", "deraining, Rain13k", 33.24, 0.933),
        "maxim_2s.deraining_raindrop": _released("Deraining/Raindrop", "deraining, Raindrop", 31.87, 0.935),
        "maxim_2s.dehazing_sots_indoor": _released("Dehazing/SOTS-Indoor", "dehazing, RESIDE-Indoor", 38.11, 0.991),
        "maxim_2s.dehazing_sots_outdoor": _released("Dehazing/SOTS-Outdoor", "dehazing, RESIDE-Outdoor", 34.19, 0.985),
        "maxim_2s.enhancement_lol": _released("Enhancement/LOL", "low-light enhancement, LOL", 23.43, 0.863),
        "maxim_2s.enhancement_fivek": _released("Enhancement/FiveK", "retouching, MIT-Adobe FiveK", 26.15, 0.945),
    }
)

# GMACs are counted here (visiongates.flops at 256x256: multiply-accumulates of convolutions and dense layers). The
# official "GFLOPs" (93.16 / 206.74 / 320.32 / 308.50 / 675.26 / 1042.01 for S-1/2/3, M-1/2/3 at 256x256, in the same
# Model() comments) are 2.32 / 2.30 / 2.29 / 2.21 / 2.19 / 2.19x these: a different convention (a count of
# operations, elementwise ones included, not of multiply-accumulates), not a different network. None is published
# for the 3-scale task models.
_OFFICIAL = (
    "params: official maxim/models/maxim.py Model() comments (exact counts, 1 supervision scale); GMACs "
    "counted here at 256x256"
)
_README = (
    "params: official README (22.2M, 14.1M: the exact sizes 22,212,795 and 14,176,178 truncated to one "
    "decimal, hence the 0.6% tolerance); GMACs counted here at 256x256"
)
_GFLOPS = "{} GFLOPs at 256x256 (official Model() comments), {}x the MACs here: an operation count, elementwise ops too"
model_facts = {
    "maxim_s1": ModelFacts(6.108515, _OFFICIAL, 40.077, task="restoration", published=_GFLOPS.format(93.16, 2.32)),
    "maxim_s2": ModelFacts(13.35383, _OFFICIAL, 90.075, task="restoration", published=_GFLOPS.format(206.74, 2.30)),
    "maxim_s3": ModelFacts(20.599145, _OFFICIAL, 140.073, task="restoration", published=_GFLOPS.format(320.32, 2.29)),
    "maxim_m1": ModelFacts(19.361219, _OFFICIAL, 139.813, task="restoration", published=_GFLOPS.format(308.50, 2.21)),
    "maxim_m2": ModelFacts(40.83911, _OFFICIAL, 308.194, task="restoration", published=_GFLOPS.format(675.26, 2.19)),
    "maxim_m3": ModelFacts(62.317001, _OFFICIAL, 476.575, task="restoration", published=_GFLOPS.format(1042.01, 2.19)),
    "maxim_3s": ModelFacts(22.2, _README, 149.406, params_tol=0.006, task="restoration"),
    "maxim_2s": ModelFacts(14.1, _README, 94.851, params_tol=0.006, task="restoration"),
}


def _variant(features: int, num_stages: int, **kwargs: Any) -> dict[str, Any]:
    return dict(features=features, num_stages=num_stages, num_groups=2, num_bottleneck_blocks=2, **kwargs)


@register_model
def maxim_s1(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-S-1: 32 features, 1 stage."""
    return _create_maxim("maxim_s1", pretrained, **dict(_variant(32, 1), **kwargs))


@register_model
def maxim_s2(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-S-2: 32 features, 2 stages."""
    return _create_maxim("maxim_s2", pretrained, **dict(_variant(32, 2), **kwargs))


@register_model
def maxim_s3(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-S-3: 32 features, 3 stages."""
    return _create_maxim("maxim_s3", pretrained, **dict(_variant(32, 3), **kwargs))


@register_model
def maxim_m1(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-M-1: 64 features, 1 stage."""
    return _create_maxim("maxim_m1", pretrained, **dict(_variant(64, 1), **kwargs))


@register_model
def maxim_m2(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-M-2: 64 features, 2 stages."""
    return _create_maxim("maxim_m2", pretrained, **dict(_variant(64, 2), **kwargs))


@register_model
def maxim_m3(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-M-3: 64 features, 3 stages."""
    return _create_maxim("maxim_m3", pretrained, **dict(_variant(64, 3), **kwargs))


@register_model
def maxim_3s(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-3S of the released denoising / deblurring checkpoints: S-3 with 3 supervision scales."""
    return _create_maxim("maxim_3s", pretrained, **dict(_variant(32, 3, num_supervision_scales=3), **kwargs))


@register_model
def maxim_2s(pretrained: bool = False, **kwargs: Any) -> MAXIM:
    """MAXIM-2S of the released deraining / dehazing / enhancement checkpoints: S-2 with 3 supervision scales."""
    return _create_maxim("maxim_2s", pretrained, **dict(_variant(32, 2, num_supervision_scales=3), **kwargs))
