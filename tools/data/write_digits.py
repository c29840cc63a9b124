#!/usr/bin/env python
"""Write held-out digits (the embedded set's val split) as PNG files, for tools that take image files.

python tools/data/write_digits.py --output runs/digits_cbam_resnet18/samples --count 10
"""

import argparse

from visiongates.cli import run_cli


def main() -> None:
    from visiongates.data import write_digit_pngs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--output", required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    paths = write_digit_pngs(args.output, args.count, args.split)
    print(f"wrote {len(paths)} {args.split} digits to {args.output}")


if __name__ == "__main__":
    run_cli(main)
