"""Build, or load the cached build of, the BiGLA CUDA extension (torch.utils.cpp_extension.load over csrc/).

The first call compiles (ninja, `MAX_JOBS` parallel jobs) into `$TORCH_EXTENSIONS_DIR/<name>` or
`~/.cache/visiongates/torch_extensions/<name>`; later calls load that build, and ninja recompiles only what changed.
Ahead of time, for the A100 and H100 (plus PTX for later GPUs):

    python -m visiongates.ops.bigla.cuda.build --arch 8.0 9.0
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

CSRC = Path(__file__).with_name("csrc")
DEFAULT_ARCHS = ("8.0", "9.0")  # sm_80 (portable: A100 and later) and sm_90 (H100)
ARCH_ENV = "VISIONGATES_CUDA_ARCH_LIST"  # e.g. "8.0;9.0": what a build on first use compiles for


def sources() -> list[Path]:
    """The extension's translation units: the bindings and one forward and one backward file per dtype."""
    return [CSRC / "binding.cpp", *sorted(CSRC.glob("*.cu"))]


def find_cuda_home() -> str | None:
    """A CUDA toolkit with nvcc and its headers: $CUDA_HOME, $CUDA_PATH, torch's guess, /usr/local/cuda, or the
    toolkit of the nvcc on PATH. (torch guesses from the nvcc on PATH, which misleads when that is a wrapper.)"""
    import torch.utils.cpp_extension as cpp

    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), cpp.CUDA_HOME, "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parents[1]))
    for home in candidates:
        if home and (Path(home) / "bin" / "nvcc").is_file() and (Path(home) / "include" / "cuda_runtime.h").is_file():
            return home
    return None


def arch_flags(archs: Sequence[str]) -> list[str]:
    """nvcc -gencode flags: machine code for each "major.minor", and PTX of the newest for GPUs not listed."""
    numbers = sorted({a.replace(".", "") for a in archs}, key=int)
    flags = [f"-gencode=arch=compute_{n},code=sm_{n}" for n in numbers]
    return [*flags, f"-gencode=arch=compute_{numbers[-1]},code=compute_{numbers[-1]}"]


def device_archs() -> tuple[str, ...]:
    """What a build on first use targets: $VISIONGATES_CUDA_ARCH_LIST, else the current GPU's compute capability."""
    if os.environ.get(ARCH_ENV):
        return tuple(a for a in os.environ[ARCH_ENV].replace(",", ";").split(";") if a.strip())
    import torch

    major, minor = torch.cuda.get_device_capability()
    return (f"{major}.{minor}",)


def extension_name(archs: Sequence[str], subset: bool = False) -> str:
    tag = "_".join("sm" + a.replace(".", "") for a in sorted(set(archs), key=float))
    return f"visiongates_bigla_cuda_{tag}" + ("_subset" if subset else "")


def default_build_root() -> Path:
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    return Path(root) if root else Path.home() / ".cache" / "visiongates" / "torch_extensions"


def build(
    archs: Sequence[str] = DEFAULT_ARCHS,
    subset: bool = False,
    build_root: Path | None = None,
    verbose: bool = False,
) -> ModuleType:
    """Compile (or load) the extension for `archs`; `subset` compiles only ViG's head dims (16, 32) and (32, 64)."""
    home = find_cuda_home()
    if home is None:
        raise RuntimeError("no CUDA toolkit (nvcc and cuda_runtime.h) found; set CUDA_HOME")
    import torch.utils.cpp_extension as cpp

    cpp.CUDA_HOME = home  # torch fixed its guess at import time; the include and library paths follow this
    name = extension_name(archs, subset)
    directory = (build_root or default_build_root()) / name
    directory.mkdir(parents=True, exist_ok=True)
    defines = ["-DBIGLA_HEAD_DIM_SUBSET"] if subset else []
    return cpp.load(
        name=name,
        sources=[str(s) for s in sources()],
        extra_cflags=["-O3", *defines],  # the C++ standard is torch's (C++17 or later; the sources need C++17)
        extra_cuda_cflags=["-O3", "-lineinfo", *defines, *arch_flags(archs)],
        extra_include_paths=[str(CSRC)],
        build_directory=str(directory),
        verbose=verbose,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS), help="compute capabilities, e.g. 8.0 9.0")
    parser.add_argument("--subset", action="store_true", help="only ViG's head dims (16, 32) and (32, 64)")
    parser.add_argument("--build-root", type=Path, default=None, help="default: " + str(default_build_root()))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    module = build(args.arch, args.subset, args.build_root, args.verbose)
    dims = ", ".join(f"({k}, {v})" for k, v, *_ in module.head_dims())
    print(f"{module.__name__}: head dims {dims}; built or loaded in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
