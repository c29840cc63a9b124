"""A classifier trained by tools/train.py on the shared photos, exported: onnxruntime (from the image files and the
.onnx alone) and PyTorch (through tools/eval.py's pipeline) agree on top-1 for every validation image; its int8
copy is measured against it. Also the command-line path the README's demo takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from quick_train import train_run
from runtime_blocker import INFER, run_blocked

from visiongates.benchmarks.table import markdown_table
from visiongates.export import OnnxModel, export_source, load_source
from visiongates.export.compare import folder_agreement, torch_folder_logits
from visiongates.export.quantize import compare_int8, quantize, quantize_int8

REPO = Path(__file__).resolve().parents[1]
MAIN_CONFIG = REPO / "configs" / "cls" / "digits_cbam_resnet18.yaml"

# meant to keep the module on one worker (see SHARED in test_export.py: not applied under pytest 9 yet)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hymenoptera_onnx")]


@pytest.fixture(scope="session")  # once per worker, whatever it runs between this module's tests
def hymenoptera_onnx(tmp_path_factory, request) -> tuple[Path, Path]:
    """cbam_resnet18 trained 3 epochs at 128 px on hymenoptera, exported: (best.pth, best.onnx)."""
    data = REPO.parent / "shared" / "data" / "hymenoptera_data"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    out = tmp_path_factory.mktemp("hymenoptera")
    augment = dict(crop_pct=0.875, hflip=0.5, rotate=0)
    train_run(out, config_file=MAIN_CONFIG, data=str(data), epochs=3, img_size=128, batch_size=32, lr=1e-3, **augment)
    checkpoint = out / "best.pth"
    report = export_source(str(checkpoint), out / "best.onnx")
    assert report.max_diff <= 1e-4, report.parity
    return checkpoint, report.path


def test_onnxruntime_and_pytorch_agree_on_every_val_image(hymenoptera_onnx):
    checkpoint, onnx_path = hymenoptera_onnx
    data = REPO.parent / "shared" / "data" / "hymenoptera_data" / "val"
    onnx_model = OnnxModel(onnx_path)
    assert onnx_model.info.labels == ["ants", "bees"] and onnx_model.info.input_size == (3, 128, 128)
    model, info = load_source(str(checkpoint))
    result = folder_agreement(onnx_model, model, info, data)
    print(result)
    assert result["images"] == 153
    assert result["top1_agree"] == 153, result["disagreements"]
    assert result["onnxruntime_top1"] == result["pytorch_top1"]
    assert result["max_abs_prob_diff"] < 1e-4


def test_int8_copy_accuracy_and_speed(hymenoptera_onnx):
    _, onnx_path = hymenoptera_onnx
    data = REPO.parent / "shared" / "data" / "hymenoptera_data" / "val"
    int8 = quantize_int8(onnx_path, onnx_path.with_suffix(".int8.onnx"))
    assert OnnxModel(int8).info == OnnxModel(onnx_path).info  # the metadata travels with the quantized copy
    result = compare_int8(onnx_path, int8, data, runs=10)
    print("\n" + markdown_table([result]))
    assert result["images"] == 153 and result["int8_mb"] < result["fp32_mb"] / 3
    assert abs(result["top1_change"]) <= 10  # dynamic int8 on a small CNN: a few images may flip, not the model


def test_runtime_without_torch_agrees_with_pytorch_on_val(hymenoptera_onnx, tmp_path):
    """The torch-free runtime's command (no torch, timm, albumentations, cv2, mm*) on the whole val folder, against
    PyTorch through tools/eval.py's pipeline: top-1 agrees on >= 99% of the images (here: all of them)."""
    checkpoint, onnx_path = hymenoptera_onnx
    data = REPO.parent / "shared" / "data" / "hymenoptera_data" / "val"
    done = run_blocked(INFER, onnx_path, data, "--topk", "1", "--json", tmp_path / "val.json", "--batch-size", "16")
    assert done.returncode == 0 and "LEAKED" not in done.stderr, done.stderr
    runtime = {r["path"]: r["topk"][0]["index"] for r in json.loads((tmp_path / "val.json").read_text())}
    model, info = load_source(str(checkpoint))
    logits, _, files, _ = torch_folder_logits(model, info, data)
    agree = sum(runtime[str(f)] == int(row.argmax()) for f, row in zip(files, logits))
    print(f"runtime vs PyTorch top-1: {agree}/{len(files)}")
    assert len(runtime) == len(files) == 153 and agree >= 0.99 * len(files)


def test_static_int8_copy(hymenoptera_onnx):
    """Static (QDQ) int8 calibrated on 32 training images: a valid model whose top-1 stays near fp32's."""
    _, onnx_path = hymenoptera_onnx
    data = REPO.parent / "shared" / "data" / "hymenoptera_data"
    done = quantize(onnx_path, onnx_path.with_suffix(".static.onnx"), "auto", data / "train", max_images=32)
    assert done["method"] == "static" and "convolutional" in done["why"] and done["calibration_images"] == 32
    result = compare_int8(onnx_path, done["path"], data / "val", runs=10)
    print("\n" + markdown_table([result]))
    assert result["images"] == 153 and result["int8_mb"] < result["fp32_mb"] / 3
    assert abs(result["top1_change"]) <= 5 and result["predictions_changed"] <= 15


def test_demo_commands_write_export_and_classify_digits(hymenoptera_onnx, tmp_path):
    """The README's last steps, on the hymenoptera checkpoint (the digits one is what `make demo` trains)."""
    checkpoint, _ = hymenoptera_onnx
    run = [sys.executable]
    subprocess.run(
        [*run, "tools/data/write_digits.py", "--output", tmp_path / "digits", "--count", "3"], cwd=REPO, check=True
    )
    assert len(list((tmp_path / "digits").glob("val_*_digit*.png"))) == 3
    onnx_path = tmp_path / "model.onnx"
    done = subprocess.run(
        [*run, "export/export_onnx.py", checkpoint, "--output", onnx_path, "--img-size", "64"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "max abs diff" in done.stdout
    photos = sorted((REPO.parent / "shared" / "data" / "hymenoptera_data" / "val" / "bees").glob("*.jpg"))[:3]
    done = subprocess.run(
        [*run, "export/infer_onnx.py", onnx_path, *photos, "--compare", checkpoint],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agree on top-1 for 3/3 images" in done.stdout
    done = subprocess.run([*run, "export/validate_onnx.py", onnx_path], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and "ok" in done.stdout, done.stdout + done.stderr
