"""Training losses of the visiongates models (the generalized batch-shaping loss of MSViT)."""

from .batch_shaping import (  # noqa: F401
    GeneralizedBatchShapingLoss,
    batch_shaping_loss,
    beta_cdf,
    normal_cdf,
    relaxed_bernoulli_cdf,
)
