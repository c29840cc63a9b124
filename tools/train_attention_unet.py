#!/usr/bin/env python
"""Train Attention U-Net (and plain-skip U-Nets) on the coins-on-photos set; compare gates over seeds.

python tools/train_attention_unet.py --gates grid none --seeds 0 1 2 --threads 1 --output runs/seg/coins
python tools/train_attention_unet.py --gate grid --steps 100 --output /tmp/seg_grid      # one run
python tools/train_attention_unet.py --encoder cbam_resnet18 --encoder-kwargs '{}' --gate equal
"""

import argparse
import json

from visiongates.cli import add_override_flags, run_cli


def main() -> None:
    from visiongates.seg.config import load_seg_config, parse_gate
    from visiongates.seg.loop import compare_gates, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--gates", nargs="+", help="compare these skips ('grid', 'equal', 'none') over --seeds")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds of the comparison (default 0 1 2)")
    parser.add_argument("--gate", default="grid", help="one run: 'grid' (default), 'equal' or 'none'")
    parser.add_argument(
        "--encoder-kwargs", type=json.loads, default=None, help="JSON, e.g. '{\"widths\": [16, 32, 64, 128, 256]}'"
    )
    parser.add_argument("--no-deep-supervision", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_override_flags(
        parser,
        encoder=str,
        output=str,
        steps=int,
        batch_size=int,
        lr=float,
        aux_weight=float,
        size=int,
        train_length=int,
        val_length=int,
        distractors=int,
        background_dir=str,
        eval_every=int,
        threads=int,
        device=str,
        seed=int,
    )
    args = vars(parser.parse_args())
    gates, seeds = args.pop("gates"), args.pop("seeds")
    args["gate"] = parse_gate(args["gate"])
    args["deep_supervision"] = not args.pop("no_deep_supervision")
    args["progress"] = not args.pop("quiet")
    cfg = load_seg_config(**args)
    if gates or seeds:
        summary = compare_gates(cfg, seeds or [0, 1, 2], [parse_gate(g) for g in (gates or ["grid", "none"])])
        print(summary["table"])
    else:
        metrics = train(cfg)
        print(
            json.dumps(
                {k: metrics[k] for k in ("dice", "dice_pooled", "pixel_accuracy", "params", "train_seconds")}, indent=1
            )
        )


if __name__ == "__main__":
    run_cli(main)
