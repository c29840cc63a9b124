#!/usr/bin/env python
"""Fine-tune an mmdetection or mmsegmentation config on mmengine's Runner (its default_scope says which).

python tools/mm/train.py configs/det/CONFIG.py [--work-dir DIR] [--resume [CKPT]] [--cfg-options k=v ...]
torchrun --nproc_per_node 2 tools/mm/train.py configs/seg/CONFIG.py --launcher pytorch   # gloo on CPU
"""

from visiongates.cli import run_cli
from visiongates.extras import mm_tool

if __name__ == "__main__":
    run_cli(lambda: mm_tool("train"))
