"""timm's own tests/test_models.py, from the timm sdist, passes on the zoo (via the tests/timm_suite.py plugin).

Nothing is downloaded: the sdist is `VISIONGATES_TIMM_SDIST` (the .tar.gz or its unpacked folder) or a
timm-<installed version> sdist found in pip's cache (`pip download --no-binary :all: timm==<version>` puts one
there); without one the test skips. `VISIONGATES_TIMM_MODELS` (comma-separated wildcards) picks the models.
"""

import gzip
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import timm

TESTS = Path(__file__).parent
MEMBER = f"timm-{timm.__version__}/tests/test_models.py"
# The smallest model of each family whose contracts this repository implements (the whole zoo takes hours here).
DEFAULT_MODELS = "gpsa_convit_tiny,vig_gla_tiny,vig_gla_h_tiny,msvit_tiny_patch16_224,attention_unet_encoder,maxim_s1"


def _pip_cache_dir() -> Path | None:
    result = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    return Path(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else None


def _has_member(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:gz") as tar:
            return any(m.name == MEMBER for m in tar)
    except (tarfile.TarError, OSError, EOFError):
        return False


def _cached_sdists(cache: Path):
    """timm sdists in pip's cache: saved files by name, and HTTP-cache bodies that are gzip tarballs."""
    yield from cache.rglob(f"timm-{timm.__version__}.tar.gz")
    for body in cache.glob("http*/**/*"):
        if body.is_file() and 100_000 < body.stat().st_size < 20_000_000:
            with body.open("rb") as f:
                if f.read(2) == b"\x1f\x8b":
                    yield body


def find_test_models(workdir: Path) -> Path | None:
    """timm's tests/test_models.py extracted into `workdir`, or None when no sdist is at hand."""
    given = os.environ.get("VISIONGATES_TIMM_SDIST")
    candidates = [Path(given)] if given else []
    if not given and (cache := _pip_cache_dir()) is not None and cache.is_dir():
        candidates += list(_cached_sdists(cache))
    for candidate in candidates:
        if candidate.is_dir() and (candidate / "tests" / "test_models.py").is_file():
            return candidate / "tests" / "test_models.py"
        if candidate.is_file() and _has_member(candidate):
            with tarfile.open(candidate, "r:gz") as tar:
                data = tar.extractfile(MEMBER).read()
            target = workdir / "test_models.py"
            target.write_bytes(data)
            return target
    return None


@pytest.mark.slow
def test_timm_model_suite_passes(tmp_path: Path) -> None:
    test_file = find_test_models(tmp_path)
    if test_file is None:
        pytest.skip(f"no timm {timm.__version__} sdist (set VISIONGATES_TIMM_SDIST or pip-download it)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]))
    env.setdefault("VISIONGATES_TIMM_MODELS", DEFAULT_MODELS)
    # timm's per-test time limits assume a dedicated runner: off here (CI shares 2 cores between workers)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "timm_suite",
        "-p",
        "no:timeout",
        "-p",
        "no:xdist",
        "--rootdir",
        str(test_file.parent),
        str(test_file),
    ]
    result = subprocess.run(cmd, cwd=test_file.parent, env=env, capture_output=True, text=True, timeout=3600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, f"timm's suite: {summary}\n{result.stdout[-6000:]}"
    assert " passed" in summary and "failed" not in summary, summary


def test_finds_a_given_sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The locator reads the test file from a given tarball (built here) and ignores one without it."""
    tree = tmp_path / "src" / f"timm-{timm.__version__}" / "tests"
    tree.mkdir(parents=True)
    (tree / "test_models.py").write_text("# timm's tests\n")
    archive = tmp_path / "timm.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / f"timm-{timm.__version__}", arcname=f"timm-{timm.__version__}")
    monkeypatch.setenv("VISIONGATES_TIMM_SDIST", str(archive))
    out = tmp_path / "out"
    out.mkdir()
    assert find_test_models(out).read_text() == "# timm's tests\n"
    other = tmp_path / "other.tar.gz"
    other.write_bytes(gzip.compress(b"not a tarball"))
    monkeypatch.setenv("VISIONGATES_TIMM_SDIST", str(other))
    assert find_test_models(out) is None
