#!/usr/bin/env python
"""Count GMACs of registered models with `visiongates.flops` (meta device, one image at the default input size) and
print them beside the figure each model file's `model_facts` records.

    .venv/bin/python tools/analysis/count_macs.py                      # every visiongates model
    .venv/bin/python tools/analysis/count_macs.py deit_tiny_patch16_224 --cpu --size 512
"""

import argparse

from visiongates.cli import run_cli


def main() -> None:
    import visiongates  # noqa: F401  registers the models
    from visiongates.flops import count_macs, count_model_gmacs, input_size_of
    from visiongates.models import list_models, model_facts

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="timm model names (default: every visiongates model)")
    parser.add_argument(
        "--size",
        type=int,
        help="square input size instead of each model's default (the model is built for it: img_size)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="also count on CPU, with and without visiongates' extra formulas (slow for big models)",
    )
    args = parser.parse_args()

    import timm
    import torch

    print(
        "| model | input | GMACs, recorded | GMACs, counted (meta) |"
        + (" CPU | CPU, torch formulas only |" if args.cpu else "")
    )
    print("|---|---|---:|---:|" + ("---:|---:|" if args.cpu else ""))
    for name in args.names or list_models():
        size = input_size_of(name)
        if args.size:
            size = (size[0], args.size, args.size)
        facts = model_facts(name) if name in list_models() and size == input_size_of(name) else None
        recorded = f"{facts.gmacs:.4g}" if facts and facts.gmacs else ""  # recorded at the default size only
        kwargs = dict(img_size=args.size) if args.size else {}
        try:
            counted = f"{count_model_gmacs(name, size, **kwargs):.4f}"
        except Exception as error:  # noqa: BLE001  reported in the table, e.g. a data-dependent gate
            counted = f"fails on meta: {type(error).__name__}"
        row = f"| `{name}` | {size[1]}x{size[2]} | {recorded} | {counted} |"
        if args.cpu:
            torch.manual_seed(0)
            model = timm.create_model(name, **kwargs).eval()
            x = torch.randn(1, *size)
            row += f" {count_macs(model, x) / 1e9:.4f} | {count_macs(model, x, extra=False) / 1e9:.4f} |"
        print(row, flush=True)


if __name__ == "__main__":
    run_cli(main)
