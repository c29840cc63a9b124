"""What every visiongates command-line tool shares: logging set-up and turning user errors into one clear line."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence


def run_cli(main: Callable[[], int | None]) -> None:
    """Run `main`; a VisionGatesError prints `error: <message>` and exits with status 2, without a traceback.

    A run stopped on a signal (`Interrupted`) prints where its work was saved and exits 128 + the signal number.
    """
    from visiongates.errors import Interrupted, VisionGatesError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        sys.exit(main() or 0)
    except VisionGatesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        if exc.resume:
            print(f"continue with: {resume_command(exc.resume)}", file=sys.stderr)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def add_override_flags(parser: argparse.ArgumentParser, **fields: type) -> None:
    """One `--field-name VALUE` option per config field (default None: the config's own value stands)."""
    for name, kind in fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)


def resume_command(resume: Sequence[str], argv: Sequence[str] | None = None) -> str:
    """This command line with its `--resume` option (if any) replaced by `resume` (under torchrun: its launcher)."""
    argv = list(sys.argv if argv is None else argv)
    kept, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--resume":  # a value follows unless the next word is another option (mm tools: --resume [PATH])
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("-")
            continue
        if arg.startswith("--resume="):
            continue
        kept.append(arg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node {os.environ.get('LOCAL_WORLD_SIZE', world)}" if world > 1 else "python"
    return " ".join([launcher, *map(shlex.quote, kept + list(resume))])
