"""Draw the scale MSViT's gate chose for each region of some validation images (see visiongates.viz.msvit_scales).

    .venv/bin/python tools/analysis/plot_msvit_scales.py --checkpoint runs/digits_msvit_30/last.pth --data digits \
        --out runs/digits_msvit_30/scales.png
"""

from __future__ import annotations

import argparse

from visiongates.cli import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="tools/train.py checkpoint of an msvit_* model")
    parser.add_argument("--data", default="digits", help="'digits' or an ImageFolder root with <split>/")
    parser.add_argument("--split", default="val")
    parser.add_argument("--num", type=int, default=12, help="images to draw (spread over the split)")
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--out", default="msvit_scales.png")
    args = parser.parse_args()

    import torch

    from visiongates.data import build_dataset, eval_transform
    from visiongates.engine.evaluate import load_classifier
    from visiongates.viz.msvit_scales import plot_scales

    model, ckpt = load_classifier(args.checkpoint)
    cfg, classes = ckpt.get("config", {}), ckpt["classes"]
    data_config = ckpt.get("data_config") or {}
    mean, std = data_config.get("mean", (0.485, 0.456, 0.406)), data_config.get("std", (0.229, 0.224, 0.225))
    transform = eval_transform(cfg.get("img_size", 224), crop_pct=cfg.get("crop_pct", 0.875), mean=mean, std=std)
    dataset = build_dataset(args.data, args.split, transform, classes=classes)
    picks = torch.linspace(0, len(dataset) - 1, min(args.num, len(dataset))).round().long().tolist()
    samples = [dataset[i] for i in picks]
    samples = [s for s in samples if s is not None]
    images = torch.stack([image for image, _ in samples])
    with torch.no_grad():
        predicted = model(images).argmax(1).tolist()
    captions = [f"{classes[label]}→{classes[p]}" for (_, label), p in zip(samples, predicted)]
    path = plot_scales(
        model,
        images,
        args.out,
        mean,
        std,
        captions=captions,
        columns=args.columns,
        title=f"{ckpt.get('model_name')} (gate target {cfg.get('gate_target')})",
    )
    print(path)


if __name__ == "__main__":
    run_cli(main)
