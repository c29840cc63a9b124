"""Attention U-Net: the gate, the decoder on any backbone, the coins set, training and the gate overlay."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch

import visiongates  # noqa: F401  registers the models
from visiongates.data.coins_coco import Cutout
from visiongates.data.segmentation_toy import CoinSegmentationDataset, _paste, grey_coins
from visiongates.engine.config import load_config
from visiongates.layers.attention_gate import AttentionGate, forced_gates
from visiongates.layers.attention_unet_decoder import AttentionUNetDecoder, default_gate_levels
from visiongates.models.attention_unet import create_attention_unet
from visiongates.tasks.segmentation import compare_gates, dice_per_image, evaluate, load_trained, soft_dice_loss, train
from visiongates.viz.attention_gates import gate_view, plot_attention_gates

WIDTHS = (16, 32, 64, 128, 256)  # the paper's CT widths (feature_scale 4)
STRIDES = (1, 2, 4, 8, 16)


pytestmark = pytest.mark.usefixtures("one_thread")


def _features(batch=2, size=(40, 52), widths=WIDTHS, strides=STRIDES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, -(-size[0] // s), -(-size[1] // s), generator=g) for c, s in zip(widths, strides)]


def _randomize_bn(module: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so eval-mode comparisons exercise them."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


# --- the gate ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["grid", "equal"])
@pytest.mark.parametrize("size", [(16, 20), (15, 21)])
def test_gate_shapes_and_range(mode, size):
    gate = AttentionGate(8, 12, 6, mode=mode).eval()
    x, g = torch.randn(2, 8, *size), torch.randn(2, 12, (size[0] + 1) // 2, (size[1] + 1) // 2)
    with torch.no_grad():
        out, alpha = gate(x, g)
    assert out.shape == x.shape and alpha.shape == (2, 1, *size)
    assert float(alpha.min()) > 0 and float(alpha.max()) < 1
    if mode == "equal":  # no output transform: x_hat = alpha * x exactly
        torch.testing.assert_close(out, alpha * x)


def test_grid_gate_follows_eq_1_2():
    """alpha = sigma(psi(ReLU(theta(x) + phi(g)))) on the 2x2 grid, then bilinear to x; out = W(alpha * x)."""
    torch.manual_seed(0)
    gate = AttentionGate(4, 6, 3, mode="grid").eval()
    _randomize_bn(gate)
    x, g = torch.randn(1, 4, 8, 10), torch.randn(1, 6, 4, 5)
    q = gate.psi(torch.relu(gate.theta(x) + gate.phi(g)))
    alpha = torch.nn.functional.interpolate(torch.sigmoid(q), size=(8, 10), mode="bilinear", align_corners=False)
    out, got = gate(x, g)
    torch.testing.assert_close(got, alpha)
    torch.testing.assert_close(out, gate.transform(alpha * x))
    assert gate.theta.kernel_size == gate.theta.stride == (2, 2) and gate.theta.bias is None


def test_forced_gates_context_restores():
    gate = AttentionGate(4, 4)
    with forced_gates(gate, 1.0):
        _, alpha = gate(torch.randn(1, 4, 6, 6), torch.randn(1, 4, 3, 3))
        assert torch.equal(alpha, torch.ones(1, 1, 6, 6))
    assert gate.force_alpha is None


# --- gates forced to 1 = the plain U-Net path ----------------------------------------------------------------


def _decoder_pair(gate: str, **kwargs):
    torch.manual_seed(0)
    gated = AttentionUNetDecoder(WIDTHS, STRIDES, 3, gate=gate, **kwargs).eval()
    _randomize_bn(gated)
    plain = AttentionUNetDecoder(WIDTHS, STRIDES, 3, gate=None, **kwargs).eval()
    result = plain.load_state_dict(gated.state_dict(), strict=False)
    assert not result.missing_keys
    assert all(k.startswith(("gates.", "gating.")) for k in result.unexpected_keys)
    return gated, plain


@pytest.mark.parametrize("deep_supervision", [True, False])
def test_equal_gates_forced_to_one_are_the_plain_unet(deep_supervision):
    gated, plain = _decoder_pair("equal", deep_supervision=deep_supervision)
    feats = _features()
    with torch.no_grad(), forced_gates(gated, 1.0):
        torch.testing.assert_close(
            gated(feats, output_size=(40, 52)), plain(feats, output_size=(40, 52)), rtol=0, atol=0
        )
    with torch.no_grad():
        assert not torch.allclose(gated(feats), plain(feats))  # the learned gates do change the output


def test_grid_gates_forced_to_one_are_the_plain_unet_on_w_transformed_skips():
    """The official gate keeps its output transform W = Conv1x1 + BN: forced to 1 it is a plain skip through W."""
    gated, plain = _decoder_pair("grid")
    feats = _features()
    transformed = [gated.gates[str(i)].transform(f) if str(i) in gated.gates else f for i, f in enumerate(feats)]
    with torch.no_grad(), forced_gates(gated, 1.0):
        out = gated.forward_all(feats)
        torch.testing.assert_close(out.logits, plain(transformed), rtol=0, atol=0)
    assert sorted(out.gates) == [1, 2, 3] and all(torch.equal(a, torch.ones_like(a)) for a in out.gates.values())


def test_full_model_forced_gates_match_plain_model_on_same_weights():
    torch.manual_seed(0)
    gated = create_attention_unet(num_classes=2, gate="equal").eval()
    _randomize_bn(gated)
    plain = create_attention_unet(num_classes=2, gate=None).eval()
    plain.load_state_dict(gated.state_dict(), strict=False)
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad(), forced_gates(gated, 1.0):
        torch.testing.assert_close(gated(x), plain(x), rtol=0, atol=0)


# --- shapes, sizes and backbones ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(256, 256), (255, 321)])
def test_attention_unet_shapes(size):
    model = create_attention_unet(num_classes=3).eval()
    with torch.no_grad():
        out = model.forward_all(torch.randn(1, 3, *size))
    assert out.logits.shape == (1, 3, *size) and torch.isfinite(out.logits).all()
    assert len(out.aux_logits) == 4 and all(a.shape == (1, 3, *size) for a in out.aux_logits)
    expected = {level: (1, 1, size[0] // 2**level, size[1] // 2**level) for level in (1, 2, 3)}  # max-pool floors
    assert {k: tuple(v.shape) for k, v in out.gates.items()} == expected


def test_parameter_counts_stated_in_the_docstring():
    """2D plain U-Net = the official 3D layer formula with 2D kernels; gated = one-gate layout less combine_gates."""
    counts = {
        gate: sum(p.numel() for p in create_attention_unet(num_classes=2, gate=gate).parameters())
        for gate in (None, "grid", "equal")
    }
    assert counts == {None: 1_966_058, "grid": 2_184_013, "equal": 2_098_451}


def test_decoder_on_a_zoo_backbone_and_equal_strides():
    model = create_attention_unet("cbam_resnet18", num_classes=2, gate="grid").eval()
    assert model.decoder.strides == [2, 4, 8, 16, 32] and model.decoder.gate_levels == [1, 2, 3]
    with torch.no_grad():
        logits, gates = model(torch.randn(1, 3, 65, 97), return_gates=True)
    assert logits.shape == (1, 2, 65, 97) and sorted(gates) == [1, 2, 3]
    vit = create_attention_unet("gpsa_convit_tiny", num_classes=2, out_indices=(5, 11)).eval()
    assert vit.decoder.strides == [16, 16] and vit.decoder.gates["0"].sub_sample == 1
    with torch.no_grad():
        logits, gates = vit(torch.randn(1, 3, 64, 96), return_gates=True)
    assert logits.shape == (1, 2, 64, 96) and gates[0].shape == (1, 1, 4, 6)
    with pytest.raises(ValueError, match="at least 2"):
        create_attention_unet("gpsa_convit_tiny", out_indices=(11,))  # one level (the default is now the last 3)


def test_decoder_argument_errors():
    assert default_gate_levels(5) == [1, 2, 3] and default_gate_levels(2) == [0]
    with pytest.raises(ValueError):
        AttentionUNetDecoder([8, 16], [1, 2], 2, gate="soft")
    with pytest.raises(ValueError):
        AttentionUNetDecoder([8, 16], [1, 2, 4], 2)
    with pytest.raises(ValueError):
        AttentionUNetDecoder([8, 16, 32], [1, 2, 4], 2, gate_levels=[2])
    decoder = AttentionUNetDecoder([8, 16, 32], [1, 2, 4], 2)
    with pytest.raises(ValueError, match="expected 3"):
        decoder(_features(widths=(8, 16), strides=(1, 2)))


def test_every_parameter_learns():
    model = create_attention_unet(num_classes=2, gate="grid", encoder_kwargs={"widths": [4, 8, 8, 8, 8]}).train()
    out = model.forward_all(torch.randn(2, 3, 32, 32))
    (out.logits.square().mean() + sum(a.mean() for a in out.aux_logits)).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]


def test_encoder_is_a_timm_backbone():
    encoder = timm.create_model("attention_unet_encoder", features_only=True)
    assert encoder.feature_info.channels() == list(WIDTHS) and encoder.feature_info.reduction() == list(STRIDES)
    with pytest.raises(TypeError):
        timm.create_model("attention_unet_encoder", not_an_argument=1)


# --- the coins set ---------------------------------------------------------------------------------------------


def test_coin_cutouts_and_exact_paste():
    coins = grey_coins()
    assert len(coins) == 24 and all(c.mask.any() and c.image.shape == c.mask.shape for c in coins)
    assert all(c.image.dtype == np.float32 and c.image.min() >= 0 and c.image.max() <= 1 for c in coins)
    canvas, labels = np.zeros((20, 20), np.float32), np.zeros((20, 20), np.uint8)
    piece = Cutout(np.full((6, 6), 0.7, np.float32), np.eye(6, dtype=bool))
    _paste(canvas, labels, piece, 1, np.random.default_rng(0))
    assert labels.sum() > 0 and np.all(canvas[labels == 1] == np.float32(0.7)) and np.all(canvas[labels == 0] == 0)


def test_coin_dataset_splits_and_determinism():
    val_a = CoinSegmentationDataset("val", size=48, length=4, seed=0)
    val_b = CoinSegmentationDataset("val", size=48, length=4, seed=0)
    train_set = CoinSegmentationDataset("train", size=(40, 56), length=4, seed=0)
    a, b = val_a[2], val_b[2]
    assert a["image"].shape == (3, 48, 48) and a["mask"].dtype == torch.int64
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert a["mask"].sum() > 0 and set(a["mask"].unique().tolist()) <= {0, 1}
    first = train_set[0]["image"]
    assert first.shape == (3, 40, 56) and torch.equal(first, train_set[0]["image"])
    train_set.set_epoch(1)
    assert not torch.equal(first, train_set[0]["image"])  # new composites every epoch
    held_out = {id(c) for c in val_a.coins}
    assert len(val_a.coins) == 6 and not held_out & {id(c) for c in train_set.coins}


def test_dice_metric_and_loss():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, :4] = 1
    pred = target.clone()
    pred[0, :2] = 0
    assert dice_per_image(pred, target).tolist() == pytest.approx([2 * 16 / (16 + 32), 1.0])
    perfect = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 40 - 20
    assert float(soft_dice_loss(perfect, target)) < 1e-3


# --- training loop, checkpoint, comparison and the gate picture ------------------------------------------------

_TINY = dict(
    encoder_kwargs={"widths": [4, 8, 8, 8, 8]},
    size=32,
    train_length=8,
    val_length=4,
    steps=2,
    batch_size=4,
    progress=False,
)


def test_train_checkpoint_and_overlay(tmp_path):
    cfg = load_config(task="segmentation", output=str(tmp_path / "run"), gate="grid", **_TINY)
    metrics = train(cfg)
    assert 0 <= metrics["dice"] <= 1 and metrics["evals"][-1]["images"] == 4
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]["gate"] == "grid"
    model, normalize, loaded = load_trained(tmp_path / "run" / "last.pth")
    assert loaded.gate == "grid"
    from visiongates.tasks.segmentation import build_datasets

    _, val_set = build_datasets(loaded)
    loader = torch.utils.data.DataLoader(val_set, batch_size=16)
    assert evaluate(model, normalize, loader)["dice"] == pytest.approx(metrics["dice"], abs=1e-9)
    views = [gate_view(model, val_set[i]["image"], normalize, val_set[i]["mask"]) for i in range(2)]
    assert sorted(views[0].gates) == [1, 2, 3] and views[0].gates[1].shape == (32, 32)
    path = plot_attention_gates(views, tmp_path / "gates.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_gates_table(tmp_path):
    cfg = load_config(task="segmentation", output=str(tmp_path / "cmp"), **_TINY)
    summary = compare_gates(cfg, seeds=[0, 1], gates=["grid", None])
    assert set(summary["results"]) == {"grid", "none"}
    assert "U-Net (plain skips)" in summary["table"] and "±" in summary["table"]
    assert (tmp_path / "cmp" / "none_seed1" / "last.pth").is_file()


@pytest.mark.slow
def test_short_training_run_segments_held_out_coins(tmp_path):
    """One shortened seed of the documented experiment (300 -> 150 steps, ~70 s on one busy core).

    Measured: held-out Dice 0.800 at 150 steps (seed 0); the full 300-step runs reached 0.846 +- 0.016 over 3 seeds
    (docs/benchmarks.md).
    The bar leaves room for other CPUs' floating-point differences, not for a model that fails to learn.
    """
    cfg = load_config(task="segmentation", output=str(tmp_path / "run"), gate="grid", steps=150, progress=False)
    metrics = train(cfg)
    assert metrics["dice"] >= 0.70, metrics["evals"]
