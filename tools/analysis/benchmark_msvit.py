"""CPU benchmark of MSViT against the all-fine ViT with the same weights, over a real validation set.

Model: a tools/train.py MSViT checkpoint, or a fresh --model whose gate --fit-gate-target first fits to a share with
the batch-shaping loss alone (its top-1 is then chance; compute and latency are what it measures). Figures: top-1
and share of regions kept fine over the split; tokens and GMACs per image (batch 1, FlopCounterMode, averaged over
the images; and per image in padded batches); batch-1 latency, the two models timed alternately image by image
(wall: median over images of the best of --reps; CPU: median process CPU time, one thread = an idle core). The
all-fine ViT is timm's VisionTransformer holding the MSViT backbone weights (`msvit.to_plain_vit`).

    .venv/bin/python tools/analysis/benchmark_msvit.py --checkpoint runs/digits_msvit_30/last.pth --data digits
    .venv/bin/python tools/data/write_sample_photos.py --output data/photos   # an ImageFolder with train/ and val/
    .venv/bin/python tools/analysis/benchmark_msvit.py --data data/photos --fit-gate-target 0.3
"""

from __future__ import annotations

import argparse
import json

from visiongates.cli import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="tools/train.py checkpoint of an msvit_* model")
    parser.add_argument("--model", default="msvit_tiny_patch16_224", help="without --checkpoint: a fresh model")
    parser.add_argument("--data", default="digits", help="'digits' or an ImageFolder root with <split>/")
    parser.add_argument("--split", default="val")
    parser.add_argument("--img-size", type=int, help="default: the checkpoint's training size (else 224)")
    parser.add_argument("--limit", type=int, help="use the first N images only")
    parser.add_argument(
        "--latency-images", type=int, default=60, help="images timed for latency (0: count MACs only, no timing)"
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="batch size of the padded-batch GMACs row")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--fit-gate-target",
        type=float,
        help="first fit the gate to this share with the batch-shaping loss alone, on <data>/train",
    )
    parser.add_argument("--fit-epochs", type=int, default=20)
    parser.add_argument(
        "--fine-regions",
        type=int,
        nargs="+",
        help="only count MACs of --model with the gate forced to keep N regions fine, for each N",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    import timm
    import torch
    from torch.utils.data import DataLoader, Subset

    import visiongates  # noqa: F401  registers the models
    from visiongates.benchmarks.msvit import compare_with_static, comparison_table, fit_gate_to_target
    from visiongates.benchmarks.table import markdown_table
    from visiongates.data import build_dataset, collate_skip, eval_transform
    from visiongates.engine.evaluate import load_classifier
    from visiongates.models.msvit import to_plain_vit

    torch.set_num_threads(args.threads)
    if args.fine_regions:
        from visiongates.benchmarks.msvit import count_macs, macs_by_fine_regions

        size = args.img_size or 224
        model = timm.create_model(args.model, img_size=size).eval()
        vit = count_macs(to_plain_vit(model).eval(), torch.zeros(1, 3, size, size)) / 1e9
        print(f"{args.model} at {size}x{size}, batch 1, dropped-token path; the all-fine ViT: {vit:.4f} GMACs")
        rows = [{**row, "vs_vit": row["gmacs"] / vit} for row in macs_by_fine_regions(model, size, args.fine_regions)]
        print(
            markdown_table(
                rows,
                [
                    ("fine_regions", "fine regions", "d"),
                    ("fine_share", "fine share", ".3f"),
                    ("tokens", "tokens", ""),
                    ("gmacs", "GMACs", ".4f"),
                    ("vs_vit", "vs ViT", ".2f"),
                ],
            )
        )
        return
    cfg, classes, model = {}, None, None
    if args.checkpoint:
        model, ckpt = load_classifier(args.checkpoint)
        cfg, classes = ckpt.get("config", {}), ckpt["classes"]
    size = args.img_size or cfg.get("img_size", 224)
    transform = eval_transform(size, crop_pct=cfg.get("crop_pct", 0.875))
    dataset = build_dataset(args.data, args.split, transform, classes=classes)
    if model is None:
        torch.manual_seed(0)
        model = timm.create_model(args.model, num_classes=len(dataset.classes)).eval()
    if args.fit_gate_target is not None:
        train_set = build_dataset(args.data, "train", transform, classes=dataset.classes)
        fitted = fit_gate_to_target(
            model,
            DataLoader(train_set, batch_size=32, collate_fn=collate_skip),
            args.fit_gate_target,
            epochs=args.fit_epochs,
        )
        print(
            f"gate fitted to {args.fit_gate_target} with the batch-shaping loss alone on {args.data}/train "
            f"({args.fit_epochs} epochs): train share {fitted['fine_share']:.3f}, loss {fitted['loss']:.4f}"
        )
    if args.limit:
        dataset = Subset(dataset, range(min(args.limit, len(dataset))))
    model.set_token_path("drop")
    loader = DataLoader(dataset, batch_size=args.batch, collate_fn=collate_skip)
    result = compare_with_static(model, to_plain_vit(model).eval(), loader, args.latency_images, args.reps)
    print(
        f"{result['images']} images of {args.data}/{args.split} at {size}x{size}, {args.threads} thread(s), "
        f"latency over {result['latency_images']} images x {args.reps} reps, models alternated"
    )
    print(comparison_table(result))
    latency = result["latency"] if args.latency_images > 0 else {}
    print(
        "latency b1, median of every forward (ms): "
        + ", ".join(f"{name} {value['median_ms']:.2f} (p90 {value['p90_ms']:.2f})" for name, value in latency.items())
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**result, "data": args.data, "size": size, "threads": args.threads}, f, indent=1)


if __name__ == "__main__":
    run_cli(main)
