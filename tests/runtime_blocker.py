"""Run a Python file with torch, torchvision, timm, albumentations, OpenCV and every mm* package unimportable:

    python tests/runtime_blocker.py SCRIPT [ARGS...]

A meta-path finder refuses those imports (ImportError), so SCRIPT runs as on a device that has only onnxruntime,
numpy and Pillow. On exit it checks that none of them got into sys.modules another way.
"""

import importlib.abc
import runpy
import sys

BLOCKED = ("torch", "torchvision", "timm", "albumentations", "cv2")


def blocked(name: str) -> bool:
    top = name.split(".")[0]
    return top in BLOCKED or top.startswith("mm")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if blocked(name):
            raise ImportError(f"{name} is blocked: the runtime must not need it")
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, Blocker())
    script, sys.argv = sys.argv[1], sys.argv[1:]
    status = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    leaked = sorted(name for name in sys.modules if blocked(name))
    if leaked:
        print(f"LEAKED: {leaked}", file=sys.stderr)
        status = 3
    sys.exit(status)
