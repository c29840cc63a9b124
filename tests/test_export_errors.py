"""Bad input to export and ONNX inference: each a VisionGatesError in the library, one `error:` line and exit
status 2 from the command-line tools (no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from visiongates.errors import CheckpointError, DataError, ExportError, OpsetError, UnknownModelError
from visiongates.export import ExportSpec, ModelInfo, OnnxModel, export_onnx, export_source

REPO = Path(__file__).resolve().parents[1]


def _cli(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "export" / script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def _assert_user_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """A small 3-channel classifier exported with visiongates metadata."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    info = ModelInfo("classification", "tiny", (3, 32, 32), (0.5,) * 3, (0.25,) * 3, labels=list("abcdefgh"))
    return export_onnx(model.eval(), info, tmp_path_factory.mktemp("tiny") / "tiny.onnx").path


def test_unknown_model(tmp_path):
    with pytest.raises(UnknownModelError, match="cbam_resnet18"):
        export_source("cbam_resnet81", tmp_path / "x.onnx")
    _assert_user_error(
        _cli("export_onnx.py", "cbam_resnet81", "--output", tmp_path / "x.onnx"),
        "unknown model 'cbam_resnet81'",
        "Did you mean",
    )


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        export_source(str(tmp_path / "nothing.pth"), tmp_path / "x.onnx")


def test_deformable_conv_below_opset_19(tmp_path):
    with pytest.raises(OpsetError, match=r"needs opset >= 19.*DeformConv"):
        export_source("das_resnet18", tmp_path / "x.onnx", opset=18)
    _assert_user_error(
        _cli("export_onnx.py", "das_resnet18", "--opset", "18", "--output", tmp_path / "x.onnx"), "opset >= 19"
    )


@pytest.mark.parametrize("opset", [11, 17, 30])
def test_opset_outside_the_exporter_range(tmp_path, opset):
    with pytest.raises(OpsetError, match=f"opset {opset} is not supported"):
        export_source("cbam_resnet18", tmp_path / "x.onnx", opset=opset)


def test_fixed_size_family_refuses_dynamic_sizes(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    info = ModelInfo("classification", "tiny", (3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ExportError, match="fixed height and width"):
        export_onnx(model, info, tmp_path / "x.onnx", dynamic_size=True, spec=ExportSpec(dynamic_size=False))


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "CMYK"])
def test_grey_alpha_and_cmyk_images_are_converted(tiny_onnx, tmp_path, mode):
    """One grey, RGBA or CMYK file among RGB ones no longer aborts inference: every file is decoded to RGB."""
    path = tmp_path / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.new(mode, (40, 40)).save(path)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "rgb.jpg")
    predictions = OnnxModel(tiny_onnx).classify([tmp_path / "rgb.jpg", path])
    assert all(p.ok and len(p.topk) == 5 for p in predictions)
    done = _cli("infer_onnx.py", tiny_onnx, tmp_path / "rgb.jpg", path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert f"{path.name}: " in done.stdout


def test_array_with_the_wrong_channel_count(tiny_onnx):
    with pytest.raises(DataError, match="1 channel"):
        OnnxModel(tiny_onnx)(np.zeros((1, 1, 32, 32), np.float32))


def test_rgb_and_palette_images_are_accepted(tiny_onnx, tmp_path):
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "rgb.jpg")
    Image.new("RGB", (30, 40), (10, 200, 10)).convert("P").save(tmp_path / "palette.gif")
    predictions = OnnxModel(tiny_onnx).classify([tmp_path / "rgb.jpg", tmp_path / "palette.gif"], topk=2)
    assert [len(p.topk) for p in predictions] == [2, 2]
    assert all(label in "abcdefgh" for p in predictions for _, label, _ in p.topk)


def test_missing_or_unreadable_files(tiny_onnx, tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        OnnxModel(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(ExportError, match="not a loadable ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")
    bare = onnx.load(str(tiny_onnx))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ExportError, match="no visiongates metadata"):
        OnnxModel(tmp_path / "bare.onnx")
    (result,) = OnnxModel(tiny_onnx).classify([tmp_path / "absent.png"])
    assert not result.ok and "does not exist" in result.error
    (tmp_path / "text.jpg").write_text("not an image")
    done = _cli("infer_onnx.py", tiny_onnx, tmp_path / "text.jpg")  # a per-file error: status 1, one line
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")] == [
        f"error: image '{tmp_path / 'text.jpg'}' cannot be decoded (cannot identify image file "
        f"'{tmp_path / 'text.jpg'}')"
    ]
    _assert_user_error(_cli("infer_onnx.py", tmp_path / "absent.onnx", tmp_path / "text.jpg"), "does not exist")
