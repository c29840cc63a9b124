#!/usr/bin/env python
"""Train any task on the one engine: classification, restoration (MAXIM) or Attention U-Net segmentation.

python tools/train.py                                   # embedded digits, CBAM-ResNet-18
python tools/train.py --data data/photos --img-size 128 --output runs/photos   # any ImageFolder (train/, val/)
python tools/train.py --config configs/restore/maxim_s1_denoise_sigma25.yaml --threads 1      # task: restoration
python tools/train.py --config configs/attention_unet/coins.yaml --threads 1                  # task: segmentation
python tools/train.py --config ... --resume auto        # continue exactly where it stopped (also mid-epoch)
python tools/train.py --config ... --eval-only --pretrained CKPT   # evaluate only (restoration: also a Flax .npz)
torchrun --nproc_per_node 2 tools/train.py --config ... # data-parallel (gloo on CPU)
"""

import json

from visiongates.cli import run_cli


def main() -> None:
    from visiongates.tasks import build_parser, load_config
    from visiongates.tasks import main as run_task

    args = build_parser(__doc__.splitlines()[1]).parse_args()
    result = run_task(load_config(args))
    if result["rank"] == 0:  # under torchrun every rank returns a summary; one prints it
        if "table" in result:  # a gate comparison
            print(result["table"])
            return
        hidden = ("rank", "rank_checksums", "evals", "config", "results")
        print(json.dumps({k: v for k, v in result.items() if k not in hidden}, indent=1))


if __name__ == "__main__":
    run_cli(main)
