"""Layer-wise learning-rate decay for transformer backbones (BEiT / ViTDet fine-tuning), as an mmengine
optimizer-wrapper constructor.

The backbone's depth order comes from timm's fine `group_matcher` (stem / tokens first, then block by block):
a parameter at depth d of L gets lr * rate ** (L - d); necks and heads keep the base lr. 1-D parameters (norms,
biases) and the model's `no_weight_decay` names get no weight decay. Use with a `VGBackbone`:

    optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.1),
                         constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=0.7))
"""

from __future__ import annotations

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from .backbone import VGBackbone
from .registry import register_optim_constructor


@register_optim_constructor()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """paramwise_cfg: layer_decay_rate (default 0.75)."""

    def add_params(self, params: list[dict], module: nn.Module, prefix: str = "", is_dcn_module=None) -> None:
        backbone = getattr(module, "backbone", None)
        if not isinstance(backbone, VGBackbone):
            raise TypeError(
                "LayerDecayOptimWrapperConstructor needs a model whose backbone is a VGBackbone, "
                f"got {type(backbone).__name__}"
            )
        rate = float(self.paramwise_cfg.get("layer_decay_rate", 0.75))
        base_lr = self.optimizer_cfg["lr"]
        weight_decay = self.optimizer_cfg.get("weight_decay", 0.0)
        ids, num_layers = backbone.layer_ids()
        no_decay_names = backbone.no_weight_decay_names()
        groups: dict[tuple[int, bool], dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            inner = name.removeprefix("backbone.body.")
            in_backbone = inner != name
            depth = ids.get(inner, num_layers - 1) if in_backbone else num_layers
            decay = param.ndim > 1 and not (in_backbone and inner in no_decay_names)
            group = groups.setdefault(
                (depth, decay),
                {
                    "params": [],
                    "lr": base_lr * rate ** (num_layers - depth),
                    "weight_decay": weight_decay if decay else 0.0,
                },
            )
            group["params"].append(param)
        params.extend(groups[key] for key in sorted(groups))
