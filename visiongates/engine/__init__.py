"""The one training engine behind tools/train.py (every non-mm task): the loop (trainer.py), the task interface
(task.py), the config schema (config.py), the run set-up (setup.py), checkpoint files, distributed set-up, metrics
and plots; classifier checkpoint evaluation for tools/eval.py (evaluate.py). The tasks are in visiongates.tasks."""

from .checkpoint import load_checkpoint, load_model_weights, save_checkpoint  # noqa: F401
from .config import TrainConfig, build_parser, load_config  # noqa: F401
