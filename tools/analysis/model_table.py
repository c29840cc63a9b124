#!/usr/bin/env python
"""Print the zoo's model table from the registry, or rewrite it in place in README.md (--write README.md)."""

import argparse
from pathlib import Path

from visiongates.cli import run_cli


def main() -> None:
    import visiongates  # noqa: F401
    from visiongates.models import model_table_markdown, replace_model_table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="README to update between the model-table markers")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(replace_model_table(args.write.read_text()))
    else:
        print(model_table_markdown())


if __name__ == "__main__":
    run_cli(main)
