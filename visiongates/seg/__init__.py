"""Semantic segmentation training (Attention U-Net and plain U-Net skips on the coins set): config, loss, Dice, loop.

`tools/train_attention_unet.py` is the command line over `train` / `compare_gates`.
"""

from .config import SegConfig, load_seg_config  # noqa: F401
from .losses import SegmentationLoss, soft_dice_loss  # noqa: F401
from .metrics import dice_per_image  # noqa: F401
