"""Plot each GPSA head's positional attention and gate of a ConViT (see visiongates.viz.locality)."""

from __future__ import annotations

import argparse

import timm
import torch

import visiongates  # noqa: F401  registers the models
from visiongates.cli import run_cli
from visiongates.models.gpsa_convit import checkpoint_filter_fn
from visiongates.viz.locality import plot_locality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="gpsa_convit_tiny")
    parser.add_argument("--checkpoint", help="state dict (ours, timm's convit_* or the official one); default: init")
    parser.add_argument("--grid", type=int, nargs=2, default=(14, 14), metavar=("H", "W"))
    parser.add_argument("--query", type=int, nargs=2, default=None, metavar=("Y", "X"))
    parser.add_argument("--window", type=int, default=9, help="crop around the query (0: whole grid)")
    parser.add_argument("--out", default="convit_locality.png")
    args = parser.parse_args()

    model = timm.create_model(args.model).eval()
    label = f"{args.model} at initialisation"
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(checkpoint_filter_fn(state, model))
        label = f"{args.model} ({args.checkpoint})"
    path = plot_locality(model, args.out, tuple(args.grid), args.query, args.window or None, title=label)
    print(path)


if __name__ == "__main__":
    run_cli(main)
