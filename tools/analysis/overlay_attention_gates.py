#!/usr/bin/env python
"""Overlay a trained Attention U-Net's gate coefficients on input images as one PNG (visiongates.viz.attention_gates).

python tools/analysis/overlay_attention_gates.py runs/attention_unet/compare/grid_seed0/last.pth --index 0 1 2 3
# a photo of your own, read as grey, as trained:
python tools/analysis/overlay_attention_gates.py CHECKPOINT --image photo.jpg --out gates.png
"""

import argparse

from visiongates.cli import run_cli


def main() -> None:
    import numpy as np
    import torch
    from visiongates_runtime.images import load_rgb

    from visiongates.tasks.segmentation import build_datasets, load_trained
    from visiongates.viz.attention_gates import gate_view, plot_attention_gates

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("checkpoint", help="last.pth of a tools/train.py segmentation run")
    parser.add_argument("--index", type=int, nargs="+", default=[0, 1, 2, 3], help="held-out coin images to show")
    parser.add_argument("--image", nargs="+", help="image files instead of held-out samples")
    parser.add_argument("--out", default="attention_gates.png")
    args = parser.parse_args()

    model, normalize, cfg = load_trained(args.checkpoint)
    views = []
    if args.image:
        for path in args.image:
            grey = torch.from_numpy(np.asarray(load_rgb(path).convert("L"), dtype=np.float32) / 255.0)
            views.append(gate_view(model, grey[None].expand(3, -1, -1), normalize))
    else:
        _, val_set = build_datasets(cfg)
        for index in args.index:
            sample = val_set[index]
            views.append(gate_view(model, sample["image"], normalize, sample["mask"]))
    title = f"Attention U-Net ({cfg.gate} gates, {cfg.encoder}) gate coefficients α: {args.checkpoint}"
    print(plot_attention_gates(views, args.out, title=title))


if __name__ == "__main__":
    run_cli(main)
