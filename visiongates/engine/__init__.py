"""Training and evaluation machinery behind tools/train.py and tools/eval.py."""

from .checkpoint import load_checkpoint, load_model_weights, save_checkpoint  # noqa: F401
from .config import TrainConfig, build_parser, load_config  # noqa: F401
