"""Optional dependency groups ("extras") and the one-line error a tool gives when its group is missing.

`pip install .` installs the core (every zoo model, classifier training, restoration, the Attention U-Net tools and
ONNX export); `pip install '.[mm]'` adds mmengine / mmdet / mmseg for the detection and segmentation tools, on top
of mmcv 2.1.0 built with its ops (tools/bootstrap.sh builds and caches it: `make setup-mm`).
"""

from __future__ import annotations

import importlib.util

from visiongates.errors import VisionGatesError

__all__ = ["MM_PACKAGES", "MissingExtraError", "missing_mm_packages", "mm_tool", "require_mm"]

MM_PACKAGES = ("mmengine", "mmcv", "mmdet", "mmseg")
MM_INSTALL_HINT = (
    "run `make setup-mm` (or build mmcv 2.1.0 with its ops as tools/bootstrap.sh does, then `pip install '.[mm]'`)"
)


class MissingExtraError(VisionGatesError, ImportError):
    """A tool needs an optional dependency group that is not installed."""


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_mm_packages() -> list[str]:
    """The packages of the mm extra that cannot be found (empty when the extra is installed)."""
    return [name for name in MM_PACKAGES if not _installed(name)]


def require_mm(user: str) -> None:
    """Raise `MissingExtraError` naming `user` (a tool or module) and the install command if the mm extra is missing."""
    missing = missing_mm_packages()
    if missing:
        raise MissingExtraError(f"{user} needs the mm extra ({', '.join(missing)} not installed): {MM_INSTALL_HINT}")


def mm_tool(mode: str) -> int:
    """The body of tools/mm/train.py ('train') and tools/mm/test.py ('test'): the mm extra is checked before anything
    imports it, then `visiongates.mm.finetune.cli` runs."""
    require_mm(f"tools/mm/{mode}.py")
    from visiongates.mm.finetune import cli

    return cli(mode)
