#!/usr/bin/env python
"""Train a timm / visiongates classifier.

python tools/train.py                                   # embedded digits, CBAM-ResNet-18
python tools/train.py --data data/photos --img-size 128 --output runs/photos   # any ImageFolder (train/, val/)
python tools/train.py --config ... --resume auto        # continue exactly where it stopped (also mid-epoch)
torchrun --nproc_per_node 2 tools/train.py --config ... # data-parallel (gloo on CPU)
"""

import json

from visiongates.cli import run_cli


def main() -> None:
    from visiongates.engine import build_parser, load_config
    from visiongates.engine.trainer import train

    args = build_parser(__doc__.splitlines()[1]).parse_args()
    summary = train(load_config(args))
    if summary["rank"] == 0:  # under torchrun every rank returns a summary; one prints it
        print(json.dumps({k: v for k, v in summary.items() if k not in ("rank", "rank_checksums")}, indent=1))


if __name__ == "__main__":
    run_cli(main)
