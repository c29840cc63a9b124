"""`VGBackbone`: any timm / visiongates model as an mmdetection / mmsegmentation backbone.

The model is built with timm's `features_only=True`; the adapter adds what mm heads expect: validated `out_indices`,
`out_channels` and `strides`, `frozen_stages`, `norm_eval`, gradient checkpointing and loading a local checkpoint
with `weights_only=True`.

Stages are timm's feature levels (the model's `feature_info`): `frozen_stages=k` freezes every parameter that the
model uses up to the output of feature level k (-1: nothing). For ResNets that is mmdet's convention (0: the stem,
1: stem + layer1, ...); for ViT-like models level k is block k, with the patch embedding and tokens before it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import timm
import torch
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from visiongates.checkpoint import check_state_dict, clean_checkpoint
from visiongates.engine.checkpoint import load_checkpoint, model_state_from
from visiongates.models import check_model_name

from .registry import register_model

log = logging.getLogger(__name__)


def reference_model(model_name: str, **kwargs: Any) -> nn.Module:
    """The full model on the meta device (no memory, no init): its feature_info, parameter order, group_matcher."""
    try:
        return timm.create_model(model_name, pretrained=False, device="meta", **kwargs)
    except TypeError:
        with torch.device("meta"):
            return timm.create_model(model_name, pretrained=False, **kwargs)


def normalize_out_indices(out_indices: Sequence[int], num_levels: int, model_name: str) -> tuple[int, ...]:
    """Non-negative, strictly increasing feature levels; a clear error naming the valid range otherwise."""
    valid = f"{-num_levels}..{num_levels - 1}"
    if isinstance(out_indices, int) or not len(out_indices):
        raise ValueError(f"out_indices must be a non-empty sequence of feature levels ({valid} for '{model_name}')")
    resolved = []
    for index in out_indices:
        if not isinstance(index, int) or not -num_levels <= index < num_levels:
            raise ValueError(
                f"out_indices {tuple(out_indices)} is invalid for '{model_name}': it has {num_levels} feature levels, "
                f"so each index must be an integer in {valid}"
            )
        resolved.append(index % num_levels)
    if any(b <= a for a, b in zip(resolved, resolved[1:])):
        raise ValueError(f"out_indices {tuple(out_indices)} must name distinct levels in increasing order")
    return tuple(resolved)


def stage_ends(model: nn.Module, stage_modules: Sequence[str]) -> list[int]:
    """For each feature-level module, how many of the model's parameters (in registration order) come before its
    end: those of every module visited before it, and its own. A parameter-free module (ResNet's 'act1') ends
    after what precedes it (the stem)."""
    starts: dict[str, int] = {}
    order: list[str] = []
    count = 0
    for name, module in model.named_modules():
        starts[name] = count
        order.append(name)
        count += sum(1 for _ in module.parameters(recurse=False))
    ends = []
    for stage in stage_modules:
        after = [n for n in order[order.index(stage) + 1 :] if not n.startswith(stage + ".")]
        ends.append(starts[after[0]] if after else count)
    return ends


def _body_to_reference_names(body: nn.Module, reference_names: Sequence[str]) -> dict[str, str]:
    """Map the features_only body's parameter names to the full model's (getter nets add 'model.', list nets turn
    a nested first module 'stages.0' into 'stages_0')."""
    known = set(reference_names)
    mapping = {}
    for name, _ in body.named_parameters():
        candidates = [name, name.removeprefix("model.")]
        head, _, rest = name.partition(".")
        for i in range(head.count("_")):
            parts = head.split("_")
            candidates.append(".".join(["_".join(parts[: i + 1]), "_".join(parts[i + 1 :])]) + "." + rest)
        mapping[name] = next((c for c in candidates if c in known), name)
    return mapping


@register_model()
class VGBackbone(BaseModule):
    """A timm / visiongates model as a multi-level backbone (outputs a tuple of NCHW maps, finest first).

    model_name: any name `timm.create_model` knows (import of visiongates registers the zoo).
    out_indices: feature levels to return (default: timm's default for the model).
    frozen_stages: freeze feature levels 0..k and what precedes them (-1: train everything).
    norm_eval: keep every BatchNorm of the backbone in eval mode while training (frozen statistics).
    with_cp: gradient checkpointing (timm's `set_grad_checkpointing`).
    checkpoint: a local file with the model's weights (a classifier checkpoint, a plain state dict, one of the
        model's official layouts that its `checkpoint_filter_fn` maps, or an mm checkpoint with 'backbone.' keys).
    model_kwargs: extra keyword arguments for `timm.create_model` (e.g. drop_path_rate, img_size).
    """

    def __init__(
        self,
        model_name: str,
        out_indices: Sequence[int] | None = None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        checkpoint: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        import visiongates  # noqa: F401  (registers the zoo with timm)

        self.model_name = check_model_name(model_name)
        model_kwargs = dict(model_kwargs or {})
        reference = reference_model(model_name, **model_kwargs)
        self.num_levels = len(reference.feature_info)
        features: dict[str, Any] = {}
        if out_indices is not None:
            features["out_indices"] = normalize_out_indices(out_indices, self.num_levels, model_name)
        self.body = timm.create_model(model_name, pretrained=False, features_only=True, **features, **model_kwargs)
        info = self.body.feature_info
        self.out_indices = tuple(info.out_indices)
        self.out_channels: list[int] = list(info.channels())
        self.strides: list[int] = list(info.reduction())
        if not -1 <= frozen_stages < self.num_levels:
            raise ValueError(
                f"frozen_stages must lie in -1..{self.num_levels - 1} for '{model_name}', got {frozen_stages}"
            )
        self.frozen_stages, self.norm_eval, self.checkpoint = frozen_stages, norm_eval, checkpoint

        reference_names = [n for n, _ in reference.named_parameters()]
        self._reference_names = _body_to_reference_names(self.body, reference_names)
        self._group_matcher = reference.group_matcher(coarse=False) if hasattr(reference, "group_matcher") else None
        self._stage_ends = stage_ends(reference, [f["module"] for f in reference.feature_info])
        self._reference_order = {n: i for i, n in enumerate(reference_names)}
        self._no_weight_decay = set(reference.no_weight_decay()) if hasattr(reference, "no_weight_decay") else set()
        self._reference_keys = set(reference.state_dict())
        del reference
        if with_cp:
            self.set_grad_checkpointing(True)
        self._freeze_stages()

    # -- what the heads need ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.body(x))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in the backward pass (less memory, more time)."""
        target = self.body if hasattr(self.body, "set_grad_checkpointing") else getattr(self.body, "model", None)
        if target is None or not hasattr(target, "set_grad_checkpointing"):
            raise ValueError(f"'{self.model_name}' does not support gradient checkpointing")
        target.set_grad_checkpointing(enable)

    # -- freezing -----------------------------------------------------------------------------------------------
    def frozen_parameter_names(self) -> list[str]:
        """Body parameter names that `frozen_stages` freezes."""
        if self.frozen_stages < 0:
            return []
        end = self._stage_ends[self.frozen_stages]
        return [b for b, r in self._reference_names.items() if self._reference_order.get(r, end) < end]

    def _freeze_stages(self) -> None:
        frozen = set(self.frozen_parameter_names())
        for name, param in self.body.named_parameters():
            if name in frozen:
                param.requires_grad_(False)
        self._frozen_modules = [
            m
            for m in self.body.modules()
            if any(True for _ in m.parameters()) and all(not p.requires_grad for p in m.parameters())
        ]

    def train(self, mode: bool = True) -> VGBackbone:
        """Train mode, except frozen modules (always eval) and BatchNorms when `norm_eval`."""
        super().train(mode)
        if mode:
            for module in self._frozen_modules:
                module.eval()
            if self.norm_eval:
                for module in self.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()
        return self

    # -- layer-wise learning-rate decay -------------------------------------------------------------------------
    def layer_ids(self) -> tuple[dict[str, int], int]:
        """Depth index of each backbone parameter (timm's fine group_matcher: stem 0, then block by block) and the
        number of layers. Parameters the matcher does not place get the deepest layer."""
        from timm.models._manipulate import group_with_matcher

        if self._group_matcher is None:
            names = list(self._reference_names)
            return {n: i for i, n in enumerate(names)}, len(names)
        reference_to_body = {r: b for b, r in self._reference_names.items()}
        groups = group_with_matcher(((r, None) for r in reference_to_body), self._group_matcher, reverse=True)
        ids = {reference_to_body[r]: i for r, i in groups.items()}
        return ids, max(ids.values(), default=0) + 1

    def no_weight_decay_names(self) -> set[str]:
        """Body parameter names that the model asks to exclude from weight decay (pos_embed, tokens...)."""
        return {b for b, r in self._reference_names.items() if r in self._no_weight_decay}

    # -- weights --------------------------------------------------------------------------------------------------
    def init_weights(self) -> None:
        """Keep timm's initialisation; apply an mmengine `init_cfg` if given, then load `checkpoint` if given."""
        if self.init_cfg:
            super().init_weights()
        if self.checkpoint:
            self.load_weights(self.checkpoint)
        self._is_init = True

    def load_weights(self, path: str) -> None:
        """Load a local checkpoint into the body (weights_only=True); missing or mis-shaped weights are an error."""
        state = _backbone_state(model_state_from(load_checkpoint(path)))
        module = sys.modules[timm.models.model_entrypoint(self.model_name).__module__]
        filter_fn = getattr(module, "checkpoint_filter_fn", None)
        if filter_fn is not None:
            state = filter_fn(state, getattr(self.body, "model", self.body))
        own = self.body.state_dict()
        reference_to_body = {r: b for b, r in self._reference_names.items()}
        mapped = {}
        for key, value in state.items():
            for candidate in (key, "model." + key, reference_to_body.get(key, "")):
                if candidate in own:
                    mapped[candidate] = value
                    break
        # weights of the reference model that the body leaves out (its classifier) may stay unused; others may not
        foreign = {k: state[k] for k in set(state) - self._reference_keys - set(mapped)}
        check_state_dict(self.body, {**mapped, **foreign}, source=f"'{path}'", name=self.model_name)
        self.body.load_state_dict(mapped, strict=True)
        log.info(
            "loaded %d tensors of %s from %s (%d unused, e.g. the classifier)",
            len(mapped),
            self.model_name,
            path,
            len(state) - len(mapped),
        )


def _backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrappers: 'module.' (DDP, via `clean_checkpoint`), 'backbone.' (an mm checkpoint) and 'body.' (this
    adapter's own keys)."""
    state = clean_checkpoint(state)
    for prefix in ("backbone.", "body."):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state
