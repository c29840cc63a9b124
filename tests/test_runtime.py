"""The torch-free runtime (runtime/visiongates_runtime): its numpy preprocessing gives the pixels of visiongates'
OpenCV/albumentations validation pipeline bit for bit, and its command line, run where torch, torchvision, timm,
albumentations, OpenCV and every mm* package cannot be imported, predicts what the full stack predicts (top-k
identical, masks identical, restored outputs within 1e-5) while unreadable files are reported one by one."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from PIL import Image
from runtime_blocker import INFER, blocked_outputs, run_blocked
from tiny_onnx import IMAGENET
from visiongates_runtime.preprocess import classification_input
from visiongates_runtime.resize import resize_linear, resize_nearest

from visiongates.data import eval_transform
from visiongates.export import ModelInfo, OnnxModel
from visiongates.export.quantize import choose_method, quantize

REPO = Path(__file__).resolve().parents[1]


# --- preprocessing: numpy == OpenCV / albumentations ---------------------------------------------------------------


def test_resize_equals_opencv_bit_for_bit():
    rng = np.random.default_rng(0)
    shapes = [(500, 375, 256, 292), (512, 768, 256, 384), (64, 96, 128, 192), (37, 59, 146, 233), (1, 5, 3, 7)]
    shapes += [tuple(int(v) for v in rng.integers(1, 400, 4)) for _ in range(60)]
    for h, w, out_h, out_w in shapes:
        for channels in (1, 3):
            image = rng.integers(0, 256, (h, w, channels), dtype=np.uint8).squeeze(-1 if channels == 1 else ())
            expected = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
            assert np.array_equal(resize_linear(image, out_h, out_w), expected), (h, w, out_h, out_w, channels)
            expected = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
            assert np.array_equal(resize_nearest(image, out_h, out_w), expected), (h, w, out_h, out_w, channels)


@pytest.mark.parametrize("size,crop_pct", [(224, 0.875), (128, 0.875), (64, 1.0), (96, 0.9)])
def test_classification_input_equals_the_validation_transform(size, crop_pct):
    rng = np.random.default_rng(size)
    info = ModelInfo("classification", "m", (3, size, size), crop_pct=crop_pct, **IMAGENET)
    transform = eval_transform(size, crop_pct=crop_pct, mean=info.mean, std=info.std)
    for h, w in [(500, 375), (333, 500), (size, size), (40, 31), (2 * size, 3 * size)]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expected = transform(image=image)["image"].numpy()
        assert np.array_equal(classification_input(image, info), expected), (h, w)


# --- the command line without the training stack ------------------------------------------------------------------


def write_mixed_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(readable files in many PIL modes and sizes, unreadable ones: a text file and a truncated PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    files = {
        "rgb.jpg": Image.fromarray(rgb),
        "grey.png": Image.fromarray(rgb[..., 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (45, 61), dtype=np.uint8)])),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "grey16.png": Image.fromarray(rgb[..., 1].astype(np.uint16) * 257),
        "palette.gif": Image.fromarray(rgb).convert("P"),
        "small.png": Image.fromarray(rgb[:20, :27]),
    }
    for name, image in files.items():
        image.save(folder / name)
    (folder / "text.png").write_text("not an image")
    data = (folder / "rgb.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return [folder / n for n in files], [folder / "text.png", folder / "truncated.jpg"]


@pytest.mark.parametrize("task", ["classification", "segmentation", "restoration"])
def test_runtime_cli_without_the_training_stack_matches_the_full_stack(tiny_models, task, tmp_path):
    good, bad = write_mixed_images(tmp_path / "images")
    path = tiny_models[task]
    done = run_blocked(
        INFER,
        path,
        tmp_path / "images",
        "--topk",
        "3",
        "--output",
        tmp_path / "out",
        "--json",
        tmp_path / "results.json",
        "--batch-size",
        "4",
    )
    assert done.returncode == 1, done.stdout + done.stderr  # 1: some files unreadable, the others predicted
    assert "Traceback" not in done.stderr and "LEAKED" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all(any(str(b) in line for line in errors) for b in bad), done.stderr
    assert f"2 of {len(good) + 2} file(s) could not be read" in done.stderr
    records = {Path(r["path"]).name: r for r in json.loads((tmp_path / "results.json").read_text())}
    reference = OnnxModel(path)  # the full stack: OpenCV + albumentations preprocessing
    expected = reference.predict(good, topk=3)
    assert all(e.ok for e in expected)
    for file, want in zip(good, expected):
        got = records[file.name]
        assert got["error"] is None
        if task == "classification":
            assert [(t["index"], t["label"]) for t in got["topk"]] == [(i, label) for i, label, _ in want.topk]
            assert [t["probability"] for t in got["topk"]] == pytest.approx([p for *_, p in want.topk], abs=1e-6)
        elif task == "segmentation":
            mask = np.asarray(Image.open(tmp_path / "out" / f"{file.stem}_mask.png"))
            assert np.array_equal(mask, want.mask), file.name
        else:
            restored = np.asarray(Image.open(tmp_path / "out" / f"{file.stem}_restored.png"))
            assert np.array_equal(restored, want.image), file.name
    if task != "classification":  # the float outputs, through the runtime's Python API, still without torch
        outputs = blocked_outputs(path, good, tmp_path)
        for i, want in enumerate(expected):
            assert outputs[i].shape == want.output.shape
            assert np.abs(outputs[i] - want.output).max() <= 1e-5


def test_max_pixels_refuses_a_bomb_and_predicts_the_others(tiny_models, tmp_path):
    good, _ = write_mixed_images(tmp_path / "images")  # 61 x 45 pixels at most
    bomb = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(bomb)
    done = run_blocked(INFER, tiny_models["classification"], bomb, *good, "--max-pixels", "5000")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "bomb.png' is 100x100 = 10,000 pixels, over the limit of 5,000" in errors[0]
    assert [line.split(": ")[0] for line in done.stdout.splitlines()] == [str(f) for f in good]


def test_runtime_cli_errors_are_one_line(tiny_models, tmp_path):
    done = run_blocked(INFER, tmp_path / "absent.onnx", tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "does not exist" in done.stderr
    (tmp_path / "empty").mkdir()
    done = run_blocked(INFER, tiny_models["classification"], tmp_path / "empty")
    assert done.returncode == 2 and "no image files" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# --- int8 --------------------------------------------------------------------------------------------------------


def test_static_int8_quantization_gives_a_valid_model(tiny_models, tmp_path):
    good, _ = write_mixed_images(tmp_path / "calibration")
    source = tiny_models["classification"]
    done = quantize(source, tmp_path / "int8.onnx", "static", tmp_path / "calibration", "minmax")
    assert done["method"] == "static" and done["calibration_images"] == len(good)  # unreadable files skipped
    graph = onnx.load(str(done["path"]))
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    scales = {t.name: onnx.numpy_helper.to_array(t) for t in graph.graph.initializer}
    per_channel = [
        n for n in graph.graph.node if n.op_type == "DequantizeLinear" and scales.get(n.input[1], np.zeros(())).size > 1
    ]
    assert per_channel  # weights quantized per output channel
    fp32, int8 = OnnxModel(source), OnnxModel(done["path"])
    assert int8.info == fp32.info  # the metadata travels
    a, b = fp32(fp32.preprocess(good)), int8(int8.preprocess(good))
    assert np.isfinite(b).all() and np.abs(a - b).max() < 0.1 * np.abs(a).max() + 1e-3


def test_static_int8_writes_a_relative_output_path(tiny_models, tmp_path, monkeypatch):
    """The calibrator runs in a temporary working directory: a relative --output must still land in the caller's."""
    good, _ = write_mixed_images(tmp_path / "calibration")
    monkeypatch.chdir(tmp_path)
    done = quantize(tiny_models["classification"], Path("out") / "int8.onnx", "static", "calibration", "minmax")
    assert done["path"] == tmp_path / "out" / "int8.onnx" and done["path"].is_file()


def test_auto_method_by_family():
    assert choose_method("cbam_resnet18")[0] == "static"
    assert choose_method("attention_unet[cbam_resnet18]")[0] == "static"
    assert choose_method("maxim_s1")[0] == "static"
    assert choose_method("gpsa_convit_tiny")[0] == "dynamic"
    assert choose_method("vig_gla_h_tiny")[0] == "dynamic"
    assert choose_method("msvit_tiny_patch16_224")[0] == "dynamic"
