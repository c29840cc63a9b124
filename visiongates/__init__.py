"""visiongates: gated and attention-gated vision backbones registered with timm.

Importing this package registers every model with timm; it imports nothing heavy
(no mmcv/mmdet/mmseg, no CUDA build).
"""

from . import models  # noqa: F401  (registers the model families with timm)
from .models import list_models  # noqa: F401

__version__ = "0.1.0"
