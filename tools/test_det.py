#!/usr/bin/env python
"""Evaluate a detection (mmdetection) config on mmengine's Runner.

python tools/test_det.py configs/det/CONFIG.py CHECKPOINT [--show-dir DIR] [--cfg-options k=v ...]
"""

from visiongates.cli import run_cli


def main() -> int:
    from visiongates.extras import require_mm

    require_mm("tools/test_det.py")
    from visiongates.mm.finetune import cli

    return cli("det", "test")


if __name__ == "__main__":
    run_cli(main)
