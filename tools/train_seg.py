#!/usr/bin/env python
"""Fine-tune a segmentation (mmsegmentation) config on mmengine's Runner.

python tools/train_seg.py configs/seg/CONFIG.py [--work-dir DIR] [--resume [CKPT]] [--cfg-options k=v ...]
torchrun --nproc_per_node 2 tools/train_seg.py configs/seg/CONFIG.py --launcher pytorch   # gloo on CPU
"""

from visiongates.cli import run_cli


def main() -> int:
    from visiongates.extras import require_mm

    require_mm("tools/train_seg.py")
    from visiongates.mm.finetune import cli

    return cli("seg", "train")


if __name__ == "__main__":
    run_cli(main)
