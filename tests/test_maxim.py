"""MAXIM (visiongates.models.maxim): sizes, shapes, timm API, and the official Flax checkpoint layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import visiongates.models.maxim as maxim
from visiongates.layers.maxim_blocks import ConvNhwc, ConvTransposeNhwc, resize_nhwc
from visiongates.models.maxim_flax import convert_flax_params, load_flax_npz

REPO = Path(__file__).resolve().parents[1]
# exact counts printed in the official maxim/models/maxim.py (1 supervision scale)
OFFICIAL_PARAMS = {
    "maxim_s1": 6_108_515,
    "maxim_s2": 13_353_830,
    "maxim_s3": 20_599_145,
    "maxim_m1": 19_361_219,
    "maxim_m2": 40_839_110,
    "maxim_m3": 62_317_001,
}
SMALL = dict(features=8)  # narrow model for speed; the token-mixing sizes stay the official ones
# the denoising recipe cut from 150 to 60 steps at half width (S-1 topology, 16 features: ~70 s of one idle core),
# evaluated on 8 held-out 64x64 crops; it gains 1.39 dB here (the full 150-step S-1 run: 5.57 dB on 32 128x128 crops)
HALF_WIDTH = {"features": 16, "zero_init_last": True}
HELD_OUT = dict(max_eval_images=8, eval_crop_size=64)
SHORT_RUN = dict(steps=60, warmup_steps=5, num_samples=1, progress=False, model_kwargs=HALF_WIDTH, **HELD_OUT)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- sizes and shapes
@pytest.mark.parametrize("name", sorted(maxim.model_facts))
def test_param_count_matches_official(name):
    model = timm.create_model(name, device="meta")
    count = sum(p.numel() for p in model.parameters())
    facts = maxim.model_facts[name]
    assert facts.task == "restoration"
    assert abs(count / (facts.params_m * 1e6) - 1) <= facts.params_tol
    if name in OFFICIAL_PARAMS:
        assert count == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize("hw", [(64, 64), (100, 150), (257, 313)])
def test_output_shape_equals_input_shape(hw):
    model = timm.create_model("maxim_s1", **SMALL).eval()
    x = torch.rand(1, 3, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_all_stages_and_scales_on_request():
    model = timm.create_model("maxim_2s", **SMALL).eval()
    x = torch.rand(2, 3, 100, 150)
    with torch.no_grad():
        outs = model(x, return_all=True)
        final = model(x)
    assert len(outs) == 2 and all(len(stage) == 3 for stage in outs)
    assert [tuple(o.shape[-2:]) for o in outs[-1]] == [(25, 38), (50, 75), (100, 150)]
    torch.testing.assert_close(outs[-1][-1], final)


def test_padding_follows_run_eval():
    assert maxim.pad_amounts(100, 64) == (0, 14, 14)  # 100 -> 128
    assert maxim.pad_amounts(257, 64) == (1, 31, 31)  # 257 -> 258 (even) -> 320
    assert maxim.pad_amounts(128, 64) == (0, 0, 0)
    x = torch.arange(100 * 150, dtype=torch.float32).reshape(1, 1, 100, 150)
    padded, (top, left) = maxim.reflect_pad(x, 64)
    assert padded.shape[-2:] == (128, 192) and (top, left) == (14, 21)
    torch.testing.assert_close(padded[..., top : top + 100, left : left + 150], x)
    torch.testing.assert_close(padded[..., top - 1, left : left + 150], x[..., 1, :])  # reflection, edge not repeated


def test_zero_init_last_returns_input():
    model = timm.create_model("maxim_2s", zero_init_last=True, **SMALL).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)


# ---------------------------------------------------------------- timm API
def test_constructor_rejects_unknown_kwargs_and_classes():
    with pytest.raises(TypeError):
        timm.create_model("maxim_s1", not_an_arg=1)
    with pytest.raises(ValueError):
        timm.create_model("maxim_s1", num_classes=10)


def test_registered_and_device_dtype():
    assert {"maxim_s1", "maxim_s2", "maxim_s3", "maxim_m1", "maxim_m2", "maxim_m3", "maxim_3s", "maxim_2s"} <= set(
        timm.list_models("maxim_*")
    )
    model = timm.create_model("maxim_s1", dtype=torch.float64, **SMALL)
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_features_only_backbone():
    model = timm.create_model("maxim_s1", features_only=True, **SMALL).eval()
    assert model.feature_info.channels() == [8, 16, 32, 32]
    assert model.feature_info.reduction() == [1, 2, 4, 8]
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 100, 150))
    assert [tuple(f.shape) for f in feats] == [(1, 8, 100, 150), (1, 16, 50, 75), (1, 32, 25, 38), (1, 32, 13, 19)]
    assert len(model.model.stages) == 1 and model.model.stages[0].decoders is None  # pruned to the encoder


def test_forward_intermediates_and_features_agree():
    model = timm.create_model("maxim_s2", **SMALL).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        early = model.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        features = model.forward_features(x)
    assert len(inter) == 4
    torch.testing.assert_close(final, features)
    torch.testing.assert_close(early[0], inter[1])


def test_grad_checkpointing_same_result():
    torch.manual_seed(0)
    model = timm.create_model("maxim_s2", **SMALL)
    x = torch.rand(1, 3, 64, 64)
    y0 = model(x)
    y0.square().mean().backward()
    g0 = model.stages[0].encoders[0].conv_in.weight.grad.clone()
    model.zero_grad()
    model.set_grad_checkpointing(True)
    y1 = model(x)
    y1.square().mean().backward()
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(model.stages[0].encoders[0].conv_in.weight.grad, g0)


# ---------------------------------------------------------------- official Flax tree, written from the official
# code's __call__ methods (module names, Flax auto-names in call order, kernel shapes), independently of the converter.
def _official_tree(features, num_stages, num_scales, depth=3, groups=2, bottlenecks=2):
    tree = {}

    def dense(p, i, o):
        tree[f"{p}/kernel"], tree[f"{p}/bias"] = (i, o), (o,)

    def conv(p, k, i, o):
        tree[f"{p}/kernel"], tree[f"{p}/bias"] = (k, k, i, o), (o,)

    def norm(p, c):
        tree[f"{p}/scale"], tree[f"{p}/bias"] = (c,), (c,)

    def ca(p, c):
        conv(f"{p}/Conv_0", 1, c, c // 4)
        conv(f"{p}/Conv_1", 1, c // 4, c)

    def gmlp(p, c, tokens, unit):
        norm(f"{p}/LayerNorm", c)
        dense(f"{p}/in_project", c, 2 * c)
        norm(f"{p}/{unit}/intermediate_layernorm", c)
        dense(f"{p}/{unit}/Dense_0", tokens, tokens)
        dense(f"{p}/out_project", c, c)

    def mab(p, c, size):
        norm(f"{p}/LayerNorm_in", c)
        dense(f"{p}/in_project", c, 2 * c)
        gmlp(f"{p}/GridGmlpLayer", c, size * size, "GridGatingUnit")
        gmlp(f"{p}/BlockGmlpLayer", c, size * size, "BlockGatingUnit")
        dense(f"{p}/out_project", 2 * c, c)

    def cgb(p, cx, cy, c, size, upsample):
        if upsample:
            conv(f"{p}/ConvTranspose_0", 2, cy, c)
        conv(f"{p}/Conv_0", 1, cx, c)
        conv(f"{p}/Conv_1", 1, c if upsample else cy, c)
        for s in "xy":
            norm(f"{p}/LayerNorm_{s}", c)
            dense(f"{p}/in_project_{s}", c, c)
            g = f"{p}/SplitHeadMultiAxisGating_{s}"
            norm(f"{g}/LayerNorm_in", c)
            dense(f"{g}/in_project", c, 2 * c)
            dense(f"{g}/Dense_0", size * size, size * size)
            dense(f"{g}/Dense_1", size * size, size * size)
            dense(f"{g}/out_project", 2 * c, c)
            dense(f"{p}/out_project_{s}", c, c)

    def encoder(p, cin, c, size, cross, down):
        conv(f"{p}/Conv_0", 1, cin, c)
        for g in range(groups):
            mab(f"{p}/SplitHeadMultiAxisGmlpLayer_{g}", c, size)
            r = f"{p}/channel_attention_block_1{g}"
            norm(f"{r}/LayerNorm", c)
            conv(f"{r}/conv1", 3, c, c)
            conv(f"{r}/conv2", 3, c, c)
            ca(f"{r}/channel_attention", c)
        if cross:
            cgb(f"{p}/cross_gating_block", c, c, c, size, False)
        if down:
            conv(f"{p}/Conv_1", 4, c, c)

    dims = [features * 2**i for i in range(depth)]
    sizes = [16, 16, 8]
    ups = 0
    for s in range(num_stages):
        for i in range(num_scales):
            conv(f"stage_{s}_input_conv_{i}", 3, 3, dims[i])
            if s:
                cgb(f"stage_{s}_input_fuse_sam_{i}", dims[i], dims[i], dims[i], sizes[i], False)
        x = dims[0]
        for i in range(depth):
            encoder(
                f"stage_{s}_encoder_block_{i}", x + (dims[i] if i < num_scales else 0), dims[i], sizes[i], s > 0, True
            )
            x = dims[i]
        for b in range(bottlenecks):
            p = f"stage_{s}_global_block_{b}"
            conv(f"{p}/input_proj", 1, x, x)
            for g in range(groups):
                mab(f"{p}/SplitHeadMultiAxisGmlpLayer_{g}", x, 8)
                r = f"{p}/channel_attention_block_1_{g}"
                norm(f"{r}/LayerNorm", x)
                dense(f"{r}/channel_mixing/Dense_0", x, x)
                dense(f"{r}/channel_mixing/Dense_1", x, x)
                ca(f"{r}/channel_attention", x)
        y = x
        for i in reversed(range(depth)):
            for j in range(depth):
                conv(f"UpSampleRatio_{ups}/Conv_0", 1, dims[j], dims[i])
                ups += 1
            cgb(f"stage_{s}_cross_gating_block_{i}", depth * dims[i], y, dims[i], sizes[i], True)
            y = dims[i]
        for i in reversed(range(depth)):
            for j in range(depth):
                conv(f"UpSampleRatio_{ups}/Conv_0", 1, dims[depth - 1 - j], dims[i])
                ups += 1
            p = f"stage_{s}_decoder_block_{i}"
            conv(f"{p}/ConvTranspose_0", 2, x, dims[i])
            encoder(f"{p}/UNetEncoderBlock_0", dims[i] + depth * dims[i], dims[i], sizes[i], False, False)
            x = dims[i]
            if i < num_scales:
                if s < num_stages - 1:
                    p = f"stage_{s}_supervised_attention_module_{i}"
                    conv(f"{p}/Conv_0", 3, dims[i], dims[i])
                    conv(f"{p}/Conv_1", 3, dims[i], 3)
                    conv(f"{p}/Conv_2", 3, 3, dims[i])
                else:
                    conv(f"stage_{s}_output_conv_{i}", 3, dims[i], 3)
    return tree


@pytest.mark.parametrize("name,stages,scales", [("maxim_s2", 2, 1), ("maxim_2s", 2, 3)])
def test_flax_checkpoint_converts_completely(tmp_path, name, stages, scales):
    tree = _official_tree(32, stages, scales)
    if name in OFFICIAL_PARAMS:  # the tree written above has the official size
        assert sum(math.prod(s) for s in tree.values()) == OFFICIAL_PARAMS[name]
    rng = np.random.default_rng(0)
    arrays = {f"opt/target/{k}": rng.standard_normal(s).astype(np.float32) for k, s in tree.items()}
    np.savez(tmp_path / "checkpoint.npz", **arrays)
    params = load_flax_npz(tmp_path / "checkpoint.npz")
    model = timm.create_model(name)
    state = convert_flax_params(params, model)  # strict: raises on any unused or missing parameter
    assert model.load_state_dict(state, strict=True)
    # the builder's filter takes the raw tree too (what pretrained_cfg file=checkpoint.npz would pass)
    state2 = maxim.checkpoint_filter_fn(arrays, model)
    torch.testing.assert_close(state2["stages.1.decoders.0.up.weight"], state["stages.1.decoders.0.up.weight"])
    flax_kernel = params["stage_1_decoder_block_0/ConvTranspose_0/kernel"]
    torch.testing.assert_close(model.stages[1].decoders[0].up.weight[:, :, 0, 1], torch.from_numpy(flax_kernel[1, 0]))
    npz = str(tmp_path / "checkpoint.npz")  # timm's pretrained path: custom_load calls model.load_pretrained
    loaded = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=npz, custom_load=True))
    torch.testing.assert_close(loaded.stages[0].heads[0].conv_img.weight, state["stages.0.heads.0.conv_img.weight"])
    del arrays["opt/target/stage_0_input_conv_0/bias"]
    with pytest.raises(ValueError, match="1 missing"):
        convert_flax_params(arrays, model)


# ---------------------------------------------------------------- Flax / JAX operator semantics, in numpy
def _flax_conv(x, k, stride):
    """Flax nn.Conv, 'SAME' padding: correlation of NHWC x with an HWIO kernel."""
    n, h, w, _ = x.shape
    kh = k.shape[0]
    oh = -(-h // stride)
    pad = max((oh - 1) * stride + kh - h, 0)
    xp = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
    out = np.zeros((n, oh, oh, k.shape[-1]))
    for i in range(oh):
        for j in range(oh):
            patch = xp[:, i * stride : i * stride + kh, j * stride : j * stride + kh]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, k)
    return out


def _flax_conv_transpose(x, k):
    """Flax nn.ConvTranspose(kernel 2, stride 2, 'SAME'): lax.conv_transpose without kernel flip: the input is
    dilated by 2 and padded (k - 1, k + s - 2 - (k - 1)) = (1, 1), then correlated with the kernel."""
    n, h, w, c = x.shape
    xd = np.zeros((n, 2 * h - 1, 2 * w - 1, c))
    xd[:, ::2, ::2] = x
    xp = np.pad(xd, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, 2 * h, 2 * w, k.shape[-1]))
    for i in range(2 * h):
        for j in range(2 * w):
            out[:, i, j] = np.einsum("nhwc,hwco->no", xp[:, i : i + 2, j : j + 2], k)
    return out


@pytest.mark.parametrize("kernel,stride", [(1, 1), (3, 1), (4, 2)])
def test_conv_layout_matches_flax(kernel, stride):
    rng = np.random.default_rng(1)
    x, k = rng.standard_normal((1, 8, 8, 3)), rng.standard_normal((kernel, kernel, 3, 5))
    conv = ConvNhwc(3, 5, kernel, stride=stride, bias=False).double()
    conv.weight.data = torch.from_numpy(k).permute(3, 2, 0, 1)  # the converter's Conv mapping
    np.testing.assert_allclose(conv(torch.from_numpy(x)).detach().numpy(), _flax_conv(x, k, stride), atol=1e-10)


def test_conv_transpose_layout_matches_flax():
    rng = np.random.default_rng(2)
    x, k = rng.standard_normal((1, 4, 4, 3)), rng.standard_normal((2, 2, 3, 5))
    conv = ConvTransposeNhwc(3, 5, bias=False).double()
    conv.weight.data = torch.from_numpy(k).flip(0, 1).permute(2, 3, 0, 1)  # the converter's mapping
    np.testing.assert_allclose(conv(torch.from_numpy(x)).detach().numpy(), _flax_conv_transpose(x, k), atol=1e-10)


def _jax_linear_resize_1d(n_in, n_out):
    """Weights of jax.image.resize(method='linear', antialias=True) along one axis: a triangle kernel widened by
    the scale when downsampling, sampled at half-pixel centres, each row normalised over the valid inputs."""
    scale = n_out / n_in
    width = max(1.0 / scale, 1.0)
    centres = (np.arange(n_out) + 0.5) / scale
    weights = np.maximum(0.0, 1.0 - np.abs((np.arange(n_in)[None] + 0.5 - centres[:, None]) / width))
    return weights / weights.sum(1, keepdims=True)


@pytest.mark.parametrize("n_in,n_out", [(16, 8), (16, 4), (8, 16), (4, 16)])
def test_resize_matches_jax_image_resize(n_in, n_out):
    x = torch.rand(1, n_in, n_in, 2, dtype=torch.float64)
    w = torch.from_numpy(_jax_linear_resize_1d(n_in, n_out))
    expected = torch.einsum("ih,jw,nhwc->nijc", w, w, x)
    torch.testing.assert_close(resize_nhwc(x, (n_out, n_out)), expected)


def test_input_pyramid_is_half_pixel_nearest():
    model = timm.create_model("maxim_2s", **SMALL)
    x = torch.rand(1, 3, 64, 64)
    images = model._input_pyramid(x)
    # jax.image.resize 'nearest' samples input floor((i + 0.5) * scale): 2i + 1 and 4i + 2
    torch.testing.assert_close(images[1], x[:, :, 1::2, 1::2].permute(0, 2, 3, 1))
    torch.testing.assert_close(images[2], x[:, :, 2::4, 2::4].permute(0, 2, 3, 1))
    assert not torch.equal(F.interpolate(x, scale_factor=0.5, mode="nearest"), x[:, :, 1::2, 1::2])


# ---------------------------------------------------------------- training on real photos
@pytest.mark.slow
def test_short_denoising_run_raises_psnr(hymenoptera, tmp_path):
    """A shortened configs/restore/maxim_s1_denoise_sigma25.yaml run raises held-out PSNR and SSIM."""
    from visiongates.tasks import load_config, train

    cfg = load_config(
        config_file=REPO / "configs" / "restore" / "maxim_s1_denoise_sigma25.yaml",
        train_dir=str(hymenoptera / "train"),
        val_dir=str(hymenoptera / "val"),
        output=str(tmp_path),
        **SHORT_RUN,
    )
    metrics = train(cfg)
    before, after = metrics["evals"][0], metrics["evals"][-1]
    assert before["gain_db"] == pytest.approx(0.0, abs=1e-6)
    assert after["gain_db"] > 0.7, after
    assert after["ssim"] > after["input_ssim"]
