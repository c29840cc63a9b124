"""tools/train.py's run inside a test: one place for the options every test run shares (no loader worker
processes, no progress bar) and for the small digits run several tests start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# 32 px digits, a couple of steps of one epoch at full learning rate: enough to write every file of a run
DIGITS_32 = dict(data="digits", img_size=32, crop_pct=1.0, batch_size=16)
TWO_STEPS = dict(epochs=1, max_steps_per_epoch=2, warmup_epochs=0)


def train_run(output: Path, **options: Any) -> dict[str, Any]:
    """Train `options` (`visiongates.engine.load_config`'s keywords) into `output`; returns the run's summary."""
    from visiongates.engine import load_config
    from visiongates.tasks import train

    return train(load_config(output=str(output), workers=0, progress=False, **options))
