"""Model families of visiongates; importing this module registers each one with timm."""

from . import (
    attention_unet,  # noqa: F401  Attention U-Net
    gated_resnet,  # noqa: F401  CBAM / DAS ResNets
    gpsa_convit,  # noqa: F401  ConViT (gated positional self-attention)
    maxim,  # noqa: F401  MAXIM (multi-axis gated MLP restoration)
    msvit,  # noqa: F401  MSViT (gated mixed-scale tokenization)
    vig_gla,  # noqa: F401  ViG (bidirectional gated linear attention)
)
from ._registry import (  # noqa: F401  the registry's public names
    TIMM_FAMILIES,
    ModelFacts,
    check_model_name,
    family_modules,
    list_models,
    model_facts,
    model_table_markdown,
    model_table_rows,
    replace_model_table,
)
