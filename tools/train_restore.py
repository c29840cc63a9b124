#!/usr/bin/env python
"""Train or evaluate an image-restoration model (MAXIM) on paired folders or synthetically degraded photos.

    python tools/train_restore.py --config configs/restore/maxim_s1_denoise_sigma25.yaml --threads 1
    python tools/train_restore.py --config configs/restore/maxim_s1_denoise_sigma25.yaml --steps 50 --output /tmp/r
    python tools/train_restore.py --config configs/restore/maxim_3s_denoise_paired.yaml --eval-only \\
        --init checkpoint.npz --val-dir path/with/input_and_target   # an official Flax checkpoint, converted
"""

import argparse
import json

from visiongates.cli import add_override_flags, run_cli


def main() -> None:
    from visiongates.restore import load_restore_config
    from visiongates.restore.loop import evaluate_checkpoint, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--config", help="YAML file of RestoreConfig fields (configs/restore/*.yaml)")
    parser.add_argument("--eval-only", action="store_true", help="evaluate --init (or the config's) on val_dir")
    add_override_flags(
        parser,
        model=str,
        output=str,
        init=str,
        train_dir=str,
        val_dir=str,
        steps=int,
        batch_size=int,
        lr=float,
        crop_size=int,
        eval_crop_size=int,
        max_eval_images=int,
        eval_every=int,
        threads=int,
        device=str,
        seed=int,
    )
    args = vars(parser.parse_args())
    config, eval_only = args.pop("config"), args.pop("eval_only")
    cfg = load_restore_config(config, **args)
    if eval_only:
        print(json.dumps(evaluate_checkpoint(cfg), indent=1))
    else:
        metrics = train(cfg)
        print(json.dumps({"train_loss_last20": metrics["train_loss_last20"], "evals": metrics["evals"]}, indent=1))


if __name__ == "__main__":
    run_cli(main)
