"""Image restoration (MAXIM and other image-to-image models): degradations, datasets, losses, metrics, loop.

`tools/train_restore.py` is the command line over `train` / `evaluate_checkpoint`.
"""

from .config import RestoreConfig, load_restore_config  # noqa: F401
from .degradations import build_degradation  # noqa: F401
from .losses import MultiScaleRestorationLoss, charbonnier_loss, frequency_l1_loss  # noqa: F401
from .metrics import psnr, ssim  # noqa: F401
