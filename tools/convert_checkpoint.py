#!/usr/bin/env python
"""Convert a released checkpoint (publisher's layout: .pth, .safetensors or a Flax .npz) to a visiongates model's
state dict in safetensors, through timm's pretrained loader; print what was mapped and what was left out.

    python tools/convert_checkpoint.py vig_t_77p2acc.pth --model vig_gla_tiny --output vig_gla_tiny.safetensors
    python tools/convert_checkpoint.py checkpoint.npz --model maxim_3s --output maxim_3s_sidd.safetensors

The output loads with `timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=OUTPUT))`.
"""

import argparse

from visiongates.cli import run_cli


def main() -> None:
    from visiongates.convert.checkpoint import convert_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("source", help="checkpoint file as its publisher released it (or a visiongates state dict)")
    parser.add_argument("--model", required=True, help="visiongates / timm model name, e.g. vig_gla_tiny")
    parser.add_argument("--output", default=None, help="safetensors file to write (omit to only print the report)")
    parser.add_argument("--verbose", action="store_true", help="list every mapped tensor, not only a few renames")
    args = parser.parse_args()
    report = convert_checkpoint(args.source, args.model, args.output)
    print("\n".join(report.lines(verbose=args.verbose)))
    if args.output:
        print(f"wrote {args.output}")


if __name__ == "__main__":
    run_cli(main)
