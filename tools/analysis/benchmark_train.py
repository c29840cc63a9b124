#!/usr/bin/env python
"""Benchmark tools/train.py throughput against a bare forward+backward loop of the same model and batch.

python tools/analysis/benchmark_train.py --config configs/cls/digits_cbam_resnet18.yaml --steps 20
"""

from visiongates.cli import run_cli


def main() -> None:
    import argparse

    import torch

    from visiongates.benchmarks.table import markdown_table
    from visiongates.benchmarks.train import compare_training_throughput
    from visiongates.engine import build_parser, load_config

    parser = build_parser(__doc__.splitlines()[1])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps timed in each setting")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in ("steps", "threads")}))
    result = compare_training_throughput(cfg, steps=args.steps)
    row = {"model": cfg.model, "batch": cfg.batch_size, "img": cfg.img_size, **result}
    print(
        markdown_table(
            [row],
            [
                "model",
                "batch",
                "img",
                ("train_py_images_per_s", "tools/train.py img/s", ".1f"),
                ("bare_loop_images_per_s", "bare loop img/s", ".1f"),
                ("ratio", "ratio", ".2f"),
            ],
        )
    )


if __name__ == "__main__":
    run_cli(main)
