"""The core works with no mm* package: every model family, the main job (train, export, onnxruntime) and the
non-mm imports; the mm tools stop with one install hint (exit status 2).

Each check runs in a subprocess whose `sitecustomize` puts a meta-path finder in front that makes importing mmcv,
mmdet, mmseg and mmengine fail, as on a core-only install (`make demo`, `pip install .`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MM = ("mmcv", "mmdet", "mmseg", "mmengine")

BLOCK_MM = f'''
import sys

class BlockMM:
    """Import of {MM} fails as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {MM!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the core-without-mm test)", name=name)
        return None

sys.meta_path.insert(0, BlockMM())
'''

FAMILIES_SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys
    import torch, timm
    import visiongates
    from visiongates.extras import missing_mm_packages

    for name in {mm!r}:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"the blocker let {{name}} import")
    assert sorted(missing_mm_packages()) == sorted({mm!r}), missing_mm_packages()

    # every module of the package except the mm adapters imports without mm (export.mm imports mm lazily)
    for info in pkgutil.walk_packages(visiongates.__path__, "visiongates."):
        if not info.name.startswith("visiongates.mm"):
            importlib.import_module(info.name)
    leaked = sorted(m for m in sys.modules if m.partition(".")[0] in {mm!r})
    assert not leaked, leaked

    from visiongates.models.attention_unet import create_attention_unet

    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    names = ["cbam_resnet18", "das_resnet18", "seresnet18", "gpsa_convit_tiny", "vig_gla_tiny", "vig_gla_h_tiny",
             "msvit_tiny_patch16_224", "attention_unet_encoder"]
    with torch.no_grad():
        for name in names:
            out = timm.create_model(name, num_classes=3).eval()(x)
            assert out.shape == (1, 3) and torch.isfinite(out).all(), (name, out.shape)
            print("ok", name)
        out = timm.create_model("maxim_s1").eval()(x)
        assert out.shape == x.shape and torch.isfinite(out).all(), out.shape
        print("ok maxim_s1")
        out = create_attention_unet(num_classes=2).eval()(x)
        assert out.shape == (1, 2, 64, 64) and torch.isfinite(out).all(), out.shape
        print("ok attention_unet")
""").format(mm=MM)


@pytest.fixture(scope="module")
def core_env(tmp_path_factory) -> dict[str, str]:
    """Environment for a subprocess in which the mm packages cannot be imported."""
    site = tmp_path_factory.mktemp("no_mm_site")
    (site / "sitecustomize.py").write_text(BLOCK_MM)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # one thread per xdist worker, as conftest.py sets for the tests themselves
    env["OMP_NUM_THREADS"] = "1" if os.environ.get("PYTEST_XDIST_WORKER") else env.get("OMP_NUM_THREADS", "2")
    env["MPLBACKEND"] = "Agg"
    return env


def run(args: list[str], env: dict[str, str], cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_every_family_runs_without_mm(core_env):
    result = run(["-c", FAMILIES_SCRIPT], core_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 10, result.stdout


@pytest.mark.slow
def test_main_job_without_mm(core_env, tmp_path):
    """One (shortened) epoch of the digits config, ONNX export checked against PyTorch, onnxruntime on digit files."""
    out = tmp_path / "run"
    for step in (
        [
            "tools/train.py",
            "--config",
            "configs/cls/digits_cbam_resnet18.yaml",
            "--epochs",
            "1",
            "--max-steps-per-epoch",
            "4",
            "--output",
            str(out),
            "--progress",
            "false",
        ],
        ["export/export_onnx.py", str(out / "best.pth"), "--output", str(out / "model.onnx")],
        ["tools/data/write_digits.py", "--output", str(out / "samples"), "--count", "4"],
    ):
        result = run(step, core_env)
        assert result.returncode == 0, f"{step[0]} failed:\n{result.stdout}\n{result.stderr}"
    samples = sorted(str(p) for p in (out / "samples").glob("*.png"))
    assert len(samples) == 4
    result = run(
        ["export/infer_onnx.py", str(out / "model.onnx"), *samples, "--compare", str(out / "best.pth")], core_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "digit" in result.stdout, result.stdout


@pytest.mark.parametrize(
    "tool",
    ["tools/mm/train.py", "tools/mm/test.py", "export/export_mm.py"],
)
def test_mm_tools_give_one_install_hint(core_env, tool):
    result = run([tool, "configs/det/retinanet_cbam_resnet18_fpn_coins.py"], core_env, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {tool} needs the mm extra (mmengine, mmcv, mmdet, mmseg not installed)")
    assert "make setup-mm" in lines[-1] and "pip install '.[mm]'" in lines[-1]
