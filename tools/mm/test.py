#!/usr/bin/env python
"""Evaluate a checkpoint of an mmdetection or mmsegmentation config on mmengine's Runner (its default_scope says
which); the metrics are the last line of stdout, as JSON.

python tools/mm/test.py configs/det/CONFIG.py CHECKPOINT [--show-dir DIR] [--cfg-options k=v ...]
"""

from visiongates.cli import run_cli
from visiongates.extras import mm_tool

if __name__ == "__main__":
    run_cli(lambda: mm_tool("test"))
