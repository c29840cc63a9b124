"""visiongates.restore and the restoration task: degradations, losses, metrics, datasets, training and evaluation
on the one engine (tiny runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from visiongates.errors import VisionGatesError
from visiongates.restore import (
    MultiScaleRestorationLoss,
    build_degradation,
    charbonnier_loss,
    frequency_l1_loss,
    psnr,
    ssim,
)
from visiongates.restore.datasets import PairedFolderDataset, SyntheticDegradationDataset
from visiongates.tasks import evaluate as evaluate_checkpoint
from visiongates.tasks import load_config, train
from visiongates.tasks.restoration import load_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def _photos(folder, n=4, size=(72, 80)):
    """Smooth random images (so denoising and SSIM behave as on photos)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size[::-1], Image.BILINEAR).save(folder / f"img{i}.png")
    return folder


def test_gaussian_noise_level_and_reproducibility():
    image = torch.full((3, 64, 64), 0.5)
    noise = build_degradation([{"type": "gaussian_noise", "sigma": 25}])
    a = noise(image, torch.Generator().manual_seed(1))
    b = noise(image, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert abs(float((a - image).std()) * 255 - 25) < 1.0
    assert abs(psnr(a, image) - 20 * np.log10(255 / 25)) < 0.3


def test_blur_kernels_preserve_mean_and_size():
    image = torch.rand(3, 40, 50)
    for spec in ({"type": "gaussian_blur", "size": 9, "sigma": 1.6}, {"type": "motion_blur", "size": 7, "angle": 30}):
        out = build_degradation([spec])(image)
        assert out.shape == image.shape
        assert abs(float(out.mean() - image.mean())) < 0.01
        assert float(out.std()) < float(image.std())
    with pytest.raises(VisionGatesError):
        build_degradation([{"type": "rain"}])


def test_losses():
    x = torch.rand(2, 3, 16, 16)
    assert float(charbonnier_loss(x, x)) == pytest.approx(1e-3)
    assert float(frequency_l1_loss(x, x)) == 0.0
    y = x + 0.1
    # a constant offset only moves the DC coefficient: |0.1 * H * W| averaged over real/imag parts of all bins
    assert float(frequency_l1_loss(y, x)) == pytest.approx(0.1 * 256 / (2 * 256), rel=1e-4)
    loss = MultiScaleRestorationLoss()
    half = torch.nn.functional.interpolate(x, size=(8, 8), mode="nearest-exact")  # what the loss compares with
    expected = 3 * float(charbonnier_loss(x, x)) + float(charbonnier_loss(y, x) + 0.1 * frequency_l1_loss(y, x))
    assert float(loss([[half, x], [half, y]], x)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(y, x)) == pytest.approx(float(loss([[y]], x)))


def test_metrics():
    x = torch.rand(3, 32, 32)
    assert ssim(x, x) == pytest.approx(1.0)
    assert psnr((x + 0.1).clamp(0, 1), x) > 19


def test_datasets(tmp_path):
    clean = _photos(tmp_path / "clean")
    noise = build_degradation([{"type": "gaussian_noise", "sigma": 25}])
    val = SyntheticDegradationDataset(clean, noise, 64, train=False)
    a, b = val[0], val[0]
    assert a["input"].shape == (3, 64, 64) and a["name"] == "img0"
    torch.testing.assert_close(a["input"], b["input"])  # held-out noise is fixed
    train_set = SyntheticDegradationDataset(clean, noise, 32, train=True)
    assert train_set[1]["target"].shape == (3, 32, 32)
    paired_root = tmp_path / "paired"
    _photos(paired_root / "input")
    _photos(paired_root / "target")
    pair = PairedFolderDataset(paired_root, None, train=False)[2]
    assert pair["input"].shape == pair["target"].shape == (3, 72, 80)
    with pytest.raises(VisionGatesError):
        SyntheticDegradationDataset(tmp_path / "missing", noise, 64, train=False)


def test_train_and_evaluate_round_trip(tmp_path):
    clean = _photos(tmp_path / "clean")
    cfg = load_config(
        task="restoration",
        model="maxim_s1",
        model_kwargs={"features": 8, "zero_init_last": True},
        output=str(tmp_path / "run"),
        train_dir=str(clean),
        val_dir=str(clean),
        steps=2,
        batch_size=2,
        crop_size=64,
        eval_crop_size=64,
        num_samples=1,
        progress=False,
    )
    metrics = train(cfg)
    assert [e["step"] for e in metrics["evals"]] == [0, 2]
    assert metrics["evals"][0]["gain_db"] == pytest.approx(0.0, abs=1e-6)  # zero-init heads: output = input
    run = tmp_path / "run"
    assert json.loads((run / "metrics.json").read_text())["evals"][-1]["images"] == 4
    sample = Image.open(next((run / "samples" / "step_2").glob("*.png")))
    assert sample.size == (3 * 64 + 8, 64)  # input | output | target
    cfg.pretrained, cfg.output = str(run / "last.pth"), str(tmp_path / "eval")
    result = evaluate_checkpoint(cfg)
    assert result["psnr"] == pytest.approx(metrics["evals"][-1]["psnr"], abs=1e-4)
    with pytest.raises(VisionGatesError):
        load_weights(torch.nn.Linear(2, 2), run / "last.pth")


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: restoration\nmodel: maxim_s1\nnot_an_option: 1\n")
    with pytest.raises(VisionGatesError, match="not_an_option"):
        load_config(config_file=path)
