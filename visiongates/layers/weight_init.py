"""The weight init that timm's ViT and the official ConViT / HierViG code share, for `module.apply`."""

from timm.layers import trunc_normal_
from torch import nn

__all__ = ["trunc_normal_init"]


def trunc_normal_init(module: nn.Module) -> None:
    """Linear weights trunc-normal(std 0.02), zero biases; LayerNorms (LayerNorm2d too) to the identity.

    timm's ViT `_init_weights`, as facebookresearch/convit and hustvl/ViG's vig_h.py (`HierViG`) write it.
    """
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
