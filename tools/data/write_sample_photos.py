#!/usr/bin/env python
"""Write a small real-photo ImageFolder (train/ and val/, 6 classes) from photos shipped in scikit-image / scikit-learn.

    python tools/data/write_sample_photos.py --output data/photos                       # 16 train + 6 val per class
    python tools/data/write_sample_photos.py --output data/photos --size 224 --train-per-class 20

For README examples that need a folder of photos; any ImageFolder of your own (root/{train,val}/<class>/*.jpg)
works in its place.
"""

import argparse

from visiongates.cli import run_cli


def main() -> None:
    from visiongates.data import write_sample_photos

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--output", default="data/photos", help="(default data/photos)")
    parser.add_argument("--size", type=int, default=128, help="side of the square images in px (default 128)")
    parser.add_argument("--train-per-class", type=int, default=16)
    parser.add_argument("--val-per-class", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = write_sample_photos(args.output, args.size, args.train_per_class, args.val_per_class, args.seed)
    print(
        f"wrote {sum(counts['train'].values())} train / {sum(counts['val'].values())} val photos of "
        f"{len(counts['train'])} classes ({', '.join(counts['train'])}) to {args.output}"
    )


if __name__ == "__main__":
    run_cli(main)
