"""ONNX export of every zoo model, checked in onnxruntime against PyTorch; inference from the .onnx file alone.

`test_zoo_model_matches_pytorch_in_onnxruntime` covers every model of `visiongates.list_models()`, in two tiers so
that the whole zoo is exported in CI on 2 cores (the dynamo exporter costs ~10 ms of CPU per traced node; the zoo
has ~80k, MAXIM alone ~44k):

- the smallest model of each export family (`families.FAMILY_SPECS`): exported exactly as export/export_onnx.py
  does (dynamic batch, and height/width where the family allows; onnxscript optimizer on) at its default input
  size, compared at that size (batch 2) and, where height and width are dynamic, at a second, non-square size;
- every other variant (same blocks, other depth or width): exported at VARIANT_SIZE px with dynamic batch only and
  without the onnxscript optimizer (a third cheaper), compared at that size.
VISIONGATES_EXPORT_ALL=1 runs every model through the first tier; VISIONGATES_EXPORT_VARIANTS=0 skips the second
(then only one model per family is exported: a fifth of the time).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image
from runtime_blocker import INFER, blocked_outputs, run_blocked

import visiongates
from visiongates.export import ExportSpec, ModelInfo, OnnxModel, export_onnx, export_source, spec_for
from visiongates.export.families import family_of
from visiongates.export.parity import GraphCheck, check_parity, parity_shapes, within_tolerance
from visiongates.export.runtime import open_session
from visiongates.export.sources import model_from_registry
from visiongates.models import model_facts

TOLERANCE = 1e-4
EXPORT_ALL = os.environ.get("VISIONGATES_EXPORT_ALL") == "1"
EXPORT_VARIANTS = os.environ.get("VISIONGATES_EXPORT_VARIANTS", "1") != "0"
# tests that reuse one worker's exports. pytest-xdist 3.8 does not apply xdist_group under pytest 9 (it renames
# item._nodeid, which pytest 9 no longer reads), so `exported` is session-scoped: each worker exports a model once.
SHARED = pytest.mark.xdist_group("export_shared")
VARIANT_SIZE = 64  # the larger variants' export and parity size


def _representatives() -> set[str]:
    """The smallest registered model (by parameters) of each export family."""
    smallest: dict[str, str] = {}
    for name in sorted(visiongates.list_models(), key=lambda n: model_facts(n).params_m):
        smallest.setdefault(family_of(name) or name, name)
    return set(smallest.values())


REPRESENTATIVES = _representatives()
SHARED_MODELS = {"cbam_resnet18", "das_resnet18", "maxim_s1", "vig_gla_tiny", "vig_gla_h_tiny"}


def _zoo_params() -> list:
    """Every registered model, marked slow (each export takes 5-60 s of CPU)."""
    skip = pytest.mark.skipif(not EXPORT_VARIANTS, reason="VISIONGATES_EXPORT_VARIANTS=0: one model per family")
    return [
        pytest.param(
            name,
            marks=[pytest.mark.slow]
            + ([SHARED] if name in SHARED_MODELS else [])
            + ([] if name in REPRESENTATIVES or EXPORT_ALL else [skip]),
        )
        for name in visiongates.list_models()
    ]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Registry models exported once per worker as export/export_onnx.py does, at their default input size: name ->
    (model, .onnx path, the graph's check with perturbed weights). Session-scoped: a module-scoped fixture is torn
    down whenever the worker runs a test of another module in between, and the exports were redone."""
    cache: dict[str, tuple[torch.nn.Module, object, GraphCheck]] = {}

    def get(name: str):
        if name not in cache:
            model, info = model_from_registry(name)
            path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
            report = export_onnx(model, info, path)
            cache[name] = (model, report.path, report.check)
        return cache[name]

    return get


@pytest.mark.parametrize("name", _zoo_params())
def test_zoo_model_matches_pytorch_in_onnxruntime(name, exported, tmp_path):
    spec = spec_for(name)
    if name in REPRESENTATIVES or EXPORT_ALL:
        model, path, checker = exported(name)
        info = OnnxModel(path).info
        assert info.dynamic == (["batch", "height", "width"] if spec.dynamic_size else ["batch"])
        assert info.input_size == model.pretrained_cfg["input_size"]
        expected_shapes = 2 if spec.dynamic_size else 1
    else:
        model, info = model_from_registry(name)
        size = max(VARIANT_SIZE, spec.min_size)
        info = dataclasses.replace(info, input_size=(info.channels, size, size))
        report = export_onnx(model, info, tmp_path / f"{name}.onnx", dynamic_size=False, optimize=False)
        path, info, checker = report.path, report.info, report.check
        assert info.dynamic == ["batch"]
        expected_shapes = 1
    diffs = checker.parity(parity_shapes(info))  # the exported graph and the model, both with perturbed weights
    print(name, diffs)
    assert len(diffs) == expected_shapes
    # 1e-4 absolute; where untrained outputs exceed 1 in magnitude (MAXIM's reach +-60), 1e-4 relative to the largest:
    # fp32 rounding grows with the values, and PyTorch's own fp32 result is that far from fp64 there
    assert all(within_tolerance(diff, peak, TOLERANCE) for diff, peak in diffs.values()), diffs


@SHARED
def test_metadata_carries_the_preprocessing(exported):
    _, path, _ = exported("cbam_resnet18")
    info = OnnxModel(path).info
    assert info.task == "classification" and info.model_name == "cbam_resnet18"
    assert info.input_size == (3, 224, 224) and info.crop_pct == 0.875
    assert info.mean == pytest.approx((0.485, 0.456, 0.406)) and info.std == pytest.approx((0.229, 0.224, 0.225))
    assert len(info.labels) == 1000 and info.labels[0].startswith("tench")
    assert info.seed == 0 and info.opset == 18


@SHARED
def test_classify_files_side_by_side_with_pytorch(exported, tmp_path):
    from visiongates.data import write_digit_pngs
    from visiongates.export.compare import side_by_side, side_by_side_table

    model, path, _ = exported("cbam_resnet18")
    files = write_digit_pngs(tmp_path, count=4)
    assert [f.name.split("digit")[1] for f in files] == ["0.png", "1.png", "2.png", "3.png"]
    onnx_model = OnnxModel(path)
    predictions = onnx_model.classify(files, topk=3)
    assert [len(p.topk) for p in predictions] == [3] * 4
    assert all(p.topk[0][2] >= p.topk[1][2] for p in predictions)
    rows = side_by_side(onnx_model, model, files)
    assert all(a.top1 == b.top1 and a.topk[0][2] == pytest.approx(b.topk[0][2], abs=1e-5) for a, b in rows)
    assert "onnxruntime" in side_by_side_table(rows)


def test_segmentation_checkpoint_exports_and_writes_a_mask(tmp_path):
    """An Attention U-Net checkpoint as tools/train.py's segmentation task writes it -> .onnx -> mask PNG."""
    from visiongates.engine.checkpoint import save_checkpoint
    from visiongates.engine.config import load_config
    from visiongates.export.ort_inference import save_mask
    from visiongates.tasks.segmentation import build_model

    torch.manual_seed(0)
    cfg = load_config(task="segmentation")
    model, normalize = build_model(cfg)
    save_checkpoint({"model": model.state_dict(), "step": 0, "config": cfg.to_dict()}, tmp_path / "last.pth")
    report = export_source(str(tmp_path / "last.pth"), tmp_path / "unet.onnx")
    assert report.max_diff <= TOLERANCE
    onnx_model = OnnxModel(report.path)
    assert onnx_model.info.task == "segmentation" and onnx_model.info.labels == ["background", "coin"]
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(photo)
    mask = onnx_model.segment(photo)
    assert mask.shape == (70, 90) and mask.max() <= 1
    assert onnx_model.preprocess([photo]).shape == (1, 3, 64, 96)  # the whole image, resized to multiples of 32
    pixels = np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "exact.png")
    x = onnx_model.preprocess([tmp_path / "exact.png"])
    with torch.inference_mode():  # the training loop's own normalisation of [0, 1] images
        reference = normalize(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255)
        expected = model.eval()(reference).argmax(1)[0].numpy()
    assert np.abs(x - reference.numpy()).max() < 1e-5
    assert (onnx_model(x).argmax(1)[0] == expected).mean() > 0.999
    assert Image.open(save_mask(mask, tmp_path / "mask.png")).size == (90, 70)
    # the torch-free runtime (no torch, timm, albumentations, cv2, mm*) on the same file: the same mask and logits
    done = run_blocked(INFER, report.path, photo, "--output", tmp_path / "runtime")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "runtime" / "photo_mask.png")), mask)
    (want,) = onnx_model.predict([photo])
    assert np.abs(blocked_outputs(report.path, [photo], tmp_path)[0] - want.output).max() <= 1e-5


@pytest.mark.slow
@SHARED
def test_restoration_model_restores_an_image_file(exported, tmp_path):
    model, path, _ = exported("maxim_s1")
    photo = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(photo)
    onnx_model = OnnxModel(path)
    assert onnx_model.info.task == "restoration" and onnx_model.info.mean == (0.0, 0.0, 0.0)
    restored = onnx_model.restore(photo)
    assert restored.shape == (80, 100, 3) and restored.dtype == np.uint8
    x = torch.from_numpy(np.asarray(Image.open(photo), np.float32).transpose(2, 0, 1)[None] / 255)
    with torch.inference_mode():
        expected = (model(x)[0].clamp(0, 1) * 255).round().numpy().transpose(1, 2, 0)
    assert np.abs(restored.astype(np.float32) - expected).max() <= 1
    # the torch-free runtime (no torch, timm, albumentations, cv2, mm*): the same image, outputs within 1e-5
    done = run_blocked(INFER, path, photo, "--output", tmp_path / "runtime")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "runtime" / "noisy_restored.png")), restored)
    (want,) = onnx_model.predict([photo])
    assert np.abs(blocked_outputs(path, [photo], tmp_path)[0] - want.output).max() <= 1e-5


@SHARED
def test_das_exports_deformable_conv_as_onnx_deformconv(exported):
    import onnx

    _, path, _ = exported("das_resnet18")
    graph = onnx.load(str(path))
    assert any(n.op_type == "DeformConv" for n in graph.graph.node)
    assert next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 19


@pytest.mark.slow
@SHARED
@pytest.mark.parametrize("name", ["vig_gla_tiny", "vig_gla_h_tiny"])
def test_vig_one_file_for_any_size(name, exported):
    """One ViG / ViG-H file (BiGLA traced with a symbolic token count) serves every multiple of the model's stride:
    square, non-square, and token counts that are and are not multiples of BiGLA's 64-token chunk."""
    _, path, checker = exported(name)
    info = OnnxModel(path).info
    assert info.dynamic == ["batch", "height", "width"]
    diffs = checker.parity([(1, 3, 224, 224), (1, 3, 256, 320), (1, 3, 384, 384)])  # weights where BiGLA matters
    print(name, diffs)
    assert all(diff <= TOLERANCE for diff, _ in diffs.values()), diffs


def test_static_size_is_enforced_where_the_family_needs_it(tmp_path):
    spec = ExportSpec(dynamic_size=False)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    info = ModelInfo("classification", "tiny", (3, 32, 32), (0.5,) * 3, (0.5,) * 3)
    report = export_onnx(model, info, tmp_path / "tiny.onnx", spec=spec)
    assert report.info.dynamic == ["batch"] and list(report.parity) == ["2x3x32x32"]
    from visiongates.errors import DataError

    with pytest.raises(DataError, match="fixed height of 32"):
        OnnxModel(report.path)(np.zeros((1, 3, 48, 32), np.float32))
    assert OnnxModel(report.path)(np.zeros((5, 3, 32, 32), np.float32)).shape == (5, 4)


def test_export_source_from_registry_records_seed_for_validation(tmp_path):
    report = export_source("attention_unet_encoder", tmp_path / "enc.onnx", img_size=32, check=False)
    model, _ = model_from_registry("attention_unet_encoder", seed=report.info.seed)
    diffs = check_parity(model, open_session(report.path), report.info)
    assert max(diff for diff, _ in diffs.values()) <= TOLERANCE


@pytest.mark.slow
def test_latency_benchmark_table(tmp_path):
    from visiongates.benchmarks.table import markdown_table
    from visiongates.export.benchmark import benchmark_models

    rows = benchmark_models(["cbam_resnet18"], img_size=64, workdir=tmp_path, warmup=1, runs=4)
    table = markdown_table(rows)
    print("\n" + table)
    assert rows[0]["pytorch_ms"] > 0 and rows[0]["onnxruntime_ms"] > 0 and rows[0]["max_abs_diff"] <= TOLERANCE
    assert table.splitlines()[0] == "| model | input | pytorch_ms | onnxruntime_ms | ratio | max_abs_diff |"


def _broken_export(monkeypatch, target: object, name: str, replacement) -> None:
    """Make torch.onnx.export trace `target.name` as `replacement`, and only the export: the PyTorch side of the
    check keeps the intact module."""
    export = torch.onnx.export

    def broken(*args, **kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(target, name, replacement)
            return export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", broken)


@pytest.mark.parametrize("family", ["vig_bigla", "cbam_gate"])
def test_parity_check_fails_on_a_broken_block(family, monkeypatch, tmp_path):
    """The export check sees every block: a graph whose BiGLA outputs are zeros (ViG), or whose CBAM channel gate
    is zeroed, fails it, while the intact graph passes. With ViG's seed-0 weights the BiGLA break moves the logits by
    less than the tolerance; the check's perturbed weights make it count."""
    import visiongates.ops.bigla.dispatch as dispatch
    from visiongates.layers.gates import CbamChannelGate

    size = 64
    if family == "vig_bigla":  # one block; 96 px (36 tokens) and 128x160 (80 tokens): two and three chunks
        model, info = model_from_registry("vig_gla_tiny", depth=1)
        size = 96
        target, name, replacement = dispatch, "bigla_traceable", lambda q, k, v, *_: torch.zeros_like(v)
    else:
        model, info = model_from_registry("cbam_resnet18")
        target, name, replacement = CbamChannelGate, "forward", lambda self, x: x * 0
    info = dataclasses.replace(info, input_size=(3, size, size))
    intact = export_onnx(model, info, tmp_path / "intact.onnx", optimize=False)
    assert all(within_tolerance(diff, peak, TOLERANCE) for diff, peak in intact.parity.values()), intact.parity
    _broken_export(monkeypatch, target, name, replacement)
    broken = export_onnx(model, info, tmp_path / "broken.onnx", optimize=False)
    print(family, "intact", intact.parity, "broken", broken.parity)
    assert not any(within_tolerance(diff, peak, TOLERANCE) for diff, peak in broken.parity.values()), broken.parity
    if family == "vig_bigla":  # what the check saw before: the written file (real weights) against the model
        blind = check_parity(model, open_session(broken.path), broken.info)
        print("seed-0 weights", blind)
        assert all(within_tolerance(diff, peak, TOLERANCE) for diff, peak in blind.values()), blind
