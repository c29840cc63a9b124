"""What every visiongates command-line tool shares: logging set-up and turning user errors into one clear line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


def run_cli(main: Callable[[], int | None]) -> None:
    """Run `main`; a VisionGatesError prints `error: <message>` and exits with status 2, without a traceback."""
    from visiongates.errors import VisionGatesError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        sys.exit(main() or 0)
    except VisionGatesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: the last completed epoch is in last.pth; continue with --resume auto", file=sys.stderr)
        sys.exit(130)
