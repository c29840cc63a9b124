"""mmdetection / mmsegmentation adapters: imported by configs through `custom_imports`, never by `import visiongates`.

Importing registers, in both mmdet's and mmseg's registries: the `VGBackbone` (any timm / visiongates model), the
`SimpleFeaturePyramid` neck, the `AttentionUNetHead` decode head, the `LayerDecayOptimWrapperConstructor`, the
coins datasets and the `DataCheckHook` / `StopOnSignalHook` of the tools; it also makes mmengine read checkpoints
with torch's safe loader (see safe_load.py).
"""

from .backbone import VGBackbone  # noqa: F401
from .checks import DataCheckHook, StopOnSignalHook  # noqa: F401
from .datasets import CoinsCocoDataset, CoinsSegDataset  # noqa: F401
from .layer_decay import LayerDecayOptimWrapperConstructor  # noqa: F401
from .safe_load import install_safe_checkpoint_loader
from .sfp import SimpleFeaturePyramid  # noqa: F401
from .unet_head import AttentionUNetHead  # noqa: F401

install_safe_checkpoint_loader()
