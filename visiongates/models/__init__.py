"""Model families of visiongates; importing this module registers each one with timm."""

from . import gated_resnet  # noqa: F401  CBAM / DAS ResNets
from . import gpsa_convit  # noqa: F401  ConViT (gated positional self-attention)
from ._registry import family_modules, list_models, model_table_rows  # noqa: F401
