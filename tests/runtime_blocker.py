"""Run a Python file with torch, torchvision, timm, albumentations, OpenCV and every mm* package unimportable:

    python tests/runtime_blocker.py SCRIPT [ARGS...]

A meta-path finder refuses those imports (ImportError), so SCRIPT runs as on a device that has only onnxruntime,
numpy and Pillow. On exit it checks that none of them got into sys.modules another way.
"""

import importlib.abc
import os
import runpy
import subprocess
import sys
from pathlib import Path

INFER = Path(__file__).resolve().parents[1] / "export" / "infer_onnx.py"
BLOCKED = ("torch", "torchvision", "timm", "albumentations", "cv2")


def blocked(name: str) -> bool:
    top = name.split(".")[0]
    return top in BLOCKED or top.startswith("mm")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if blocked(name):
            raise ImportError(f"{name} is blocked: the runtime must not need it")
        return None


DUMP = """
import sys
import numpy as np
from visiongates_runtime import Model
results = Model(sys.argv[1]).predict(sys.argv[3:], topk=3, batch_size=3)
np.savez(sys.argv[2], **{f"out{i}": r.output for i, r in enumerate(results) if r.ok})
"""


def blocked_outputs(model: Path, files, folder: Path):
    """The float outputs (`Prediction.output`) of the runtime's Python API for `files`, computed in a blocked
    subprocess: {index in files: array}."""
    import numpy as np

    (folder / "dump.py").write_text(DUMP)
    done = run_blocked(folder / "dump.py", model, folder / "outputs.npz", *files)
    assert done.returncode == 0, done.stderr
    outputs = np.load(folder / "outputs.npz")
    return {int(key[3:]): outputs[key] for key in outputs.files}


def run_blocked(*args, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python tests/runtime_blocker.py ARGS...` in a subprocess; visiongates_runtime comes from this checkout."""
    runtime = Path(__file__).resolve().parents[1] / "runtime"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(runtime), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, __file__, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )


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
