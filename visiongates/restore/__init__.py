"""Image restoration parts (MAXIM and other image-to-image models): degradations, datasets, losses, metrics.

The restoration task that trains and evaluates with them on the one engine is visiongates.tasks.restoration.
"""

from .degradations import build_degradation  # noqa: F401
from .losses import MultiScaleRestorationLoss, charbonnier_loss, frequency_l1_loss  # noqa: F401
from .metrics import psnr, ssim  # noqa: F401
