"""ConViT with cached gated positional self-attention (visiongates.models.gpsa_convit, visiongates.layers.gpsa)."""

from __future__ import annotations

import math

import pytest
import timm
import torch

import visiongates
from visiongates.layers.gpsa import (
    GPSA,
    apply_positional_attention,
    axis_offsets,
    dense_positional_attention,
    head_offsets,
    positional_attention_naive,
    separable_positional_attention,
)
from visiongates.models.gpsa_convit import checkpoint_filter_fn

VARIANTS = [
    "gpsa_convit_tiny",
    "gpsa_convit_small",
    "gpsa_convit_base",
    "gpsa_convit_tiny_plus",
    "gpsa_convit_small_plus",
    "gpsa_convit_base_plus",
]


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Move every parameter off its init so parity checks see non-trivial gates, positions and logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gating_param"):
                p.copy_(torch.randn(p.shape, generator=gen) * 2)
            elif "pos_proj" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
            elif p.ndim > 1:
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
            else:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def timm_tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("convit_tiny").eval()
    _randomise(model)
    return model


@pytest.fixture(scope="module")
def ours_tiny(timm_tiny: torch.nn.Module) -> torch.nn.Module:
    model = timm.create_model("gpsa_convit_tiny").eval()
    model.load_state_dict(timm_tiny.state_dict(), strict=True)
    return model


# ----------------------------------------------------------------------------------------------- timm parity


@pytest.mark.parametrize("fused", [True, False], ids=["sdpa", "explicit"])
def test_logits_match_timm_at_224(timm_tiny, ours_tiny, fused: bool) -> None:
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for module in ours_tiny.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = fused
    try:
        with torch.no_grad():
            expected = timm_tiny(x)
            ours_cold, ours_cached = ours_tiny(x), ours_tiny(x)
        ours_grad = ours_tiny(x)  # gradient path: positional factors recomputed, not cached
    finally:
        for module in ours_tiny.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = True
    assert expected.abs().max() > 1.0  # the randomised weights give non-trivial logits
    torch.testing.assert_close(ours_cold, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours_cached, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours_grad.detach(), expected, rtol=0, atol=1e-5)


def test_logits_match_timm_at_other_square_size() -> None:
    torch.manual_seed(0)
    theirs = timm.create_model("convit_tiny", img_size=256).eval()
    _randomise(theirs, seed=3)
    ours = timm.create_model("gpsa_convit_tiny", img_size=256).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("ours", "theirs"), [("gpsa_convit_small", "convit_small"), ("gpsa_convit_base", "convit_base")]
)
def test_state_dict_layout_matches_timm(ours: str, theirs: str) -> None:
    assert _shapes(timm.create_model(ours, device="meta")) == _shapes(timm.create_model(theirs, device="meta"))


def test_small_loads_timm_strict() -> None:
    model = timm.create_model("gpsa_convit_small")
    model.load_state_dict(timm.create_model("convit_small").state_dict(), strict=True)


@pytest.mark.parametrize("name", ["gpsa_convit_tiny_plus", "gpsa_convit_small_plus", "gpsa_convit_base_plus"])
def test_plus_variants_are_convit_with_head_width_64(name: str) -> None:
    base = name.replace("gpsa_", "").replace("_plus", "")
    assert _shapes(timm.create_model(name, device="meta")) == _shapes(
        timm.create_model(base, embed_dim=64, device="meta")
    )


def test_registers_the_six_paper_variants() -> None:
    """Each one's size is checked against its model_facts by the conformance suite (check_params_match_facts)."""
    assert visiongates.list_models("gpsa_convit_*") == sorted(VARIANTS)


def test_checkpoint_filter_unwraps_and_resamples(timm_tiny) -> None:
    wrapped = {"model": {f"module.{k}": v for k, v in timm_tiny.state_dict().items()}}
    model = timm.create_model("gpsa_convit_tiny", img_size=(256, 384))
    model.load_state_dict(checkpoint_filter_fn(wrapped, model), strict=True)
    assert model.pos_embed.shape == (1, 16 * 24, 192)


def test_pretrained_file_through_timm_loader(timm_tiny, tmp_path) -> None:
    path = tmp_path / "convit_tiny.pth"
    torch.save({"model": timm_tiny.state_dict()}, path)
    model = timm.create_model(
        "gpsa_convit_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), img_size=(160, 224)
    ).eval()
    resampled = checkpoint_filter_fn(timm_tiny.state_dict(), model)["pos_embed"]
    torch.testing.assert_close(model.pos_embed.detach(), resampled)
    torch.testing.assert_close(model.blocks[3].attn.pos_proj.weight, timm_tiny.blocks[3].attn.pos_proj.weight)


# ------------------------------------------------------------------------------------------ any resolution


@pytest.mark.parametrize("size", [(224, 224), (256, 384), (512, 512)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_forward_backward_tiny(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = timm.create_model("gpsa_convit_tiny", num_classes=10).train()
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.blocks[0].attn.pos_proj.weight.grad.abs().sum() > 0  # gradients reach the positional attention
    assert model.blocks[0].attn.gating_param.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(224, 224), (256, 384), (512, 512)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_features_only_last_three_stride16_maps(size: tuple[int, int]) -> None:
    model = timm.create_model("gpsa_convit_tiny", features_only=True).eval()  # timm's ViT default: last 3 blocks
    assert model.feature_info.reduction() == [16] * 3 and model.feature_info.channels() == [192] * 3
    assert model.feature_info.module_name() == ["blocks.9", "blocks.10", "blocks.11"]
    with torch.no_grad():
        features = model(torch.randn(1, 3, *size))
    assert [tuple(f.shape) for f in features] == [(1, 192, size[0] // 16, size[1] // 16)] * 3


def test_features_only_multiple_blocks() -> None:
    model = timm.create_model("gpsa_convit_tiny", features_only=True, out_indices=(3, 9, 11)).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 160, 96))
    assert [tuple(f.shape) for f in features] == [(1, 192, 10, 6)] * 3


def test_dynamic_img_pad() -> None:
    model = timm.create_model("gpsa_convit_tiny", dynamic_img_pad=True).eval()
    with torch.no_grad():
        _, (feature,) = model.forward_intermediates(torch.randn(1, 3, 100, 130), indices=1)
    assert feature.shape == (1, 192, 7, 9)


def test_gpsa_matches_dense_oracle_on_non_square_grid() -> None:
    torch.manual_seed(0)
    height, width, dim, heads = 5, 7, 36, 4
    layer = GPSA(dim, num_heads=heads).eval()
    with torch.no_grad():
        layer.pos_proj.weight.add_(torch.randn(heads, 3) * 0.5)
        layer.pos_proj.bias.add_(torch.randn(heads))
        layer.gating_param.copy_(torch.randn(heads))
    naive = positional_attention_naive(layer.pos_proj.weight, layer.pos_proj.bias, height, width)
    py, px = separable_positional_attention(
        layer.pos_proj.weight, layer.pos_proj.bias, axis_offsets(height), axis_offsets(width)
    )
    torch.testing.assert_close(dense_positional_attention(py, px), naive, rtol=0, atol=1e-6)

    x = torch.randn(2, height * width, dim)
    v = layer.v(x).reshape(2, -1, heads, dim // heads).transpose(1, 2)
    torch.testing.assert_close(apply_positional_attention(py, px, v, (height, width)), naive @ v, rtol=0, atol=1e-5)
    with torch.no_grad():
        q, k = layer.qk(x).reshape(2, -1, 2, heads, dim // heads).permute(2, 0, 3, 1, 4)
        gate = torch.sigmoid(layer.gating_param).view(1, -1, 1, 1)
        attn = (1 - gate) * ((q @ k.transpose(-2, -1)) * layer.scale).softmax(-1) + gate * naive
        expected = layer.proj((attn @ v).transpose(1, 2).reshape(2, -1, dim))
        torch.testing.assert_close(layer(x, (height, width)), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(layer.attention_map(x, (height, width)), attn, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ locality prior


@pytest.mark.parametrize("heads", [4, 9, 16])
def test_positional_attention_peaks_at_head_offset_at_init(heads: int) -> None:
    layer = GPSA(heads * 8, num_heads=heads).eval()
    grid, (qy, qx) = (15, 17), (7, 8)
    with torch.no_grad():
        py, px = layer.positional_attention(grid)
    maps = py[:, qy, :, None] * px[:, qx, None, :]  # [heads, H, W] around the query
    k = math.isqrt(heads)
    offsets = head_offsets(heads)
    centre = (k - 1) / 2
    lattice = sorted((a - centre, b - centre) for a in range(k) for b in range(k))
    assert sorted(offsets) == lattice  # one head per cell of a k x k lattice centred on the query
    ys = torch.arange(grid[0], dtype=torch.float32)[:, None] - qy
    xs = torch.arange(grid[1], dtype=torch.float32)[None, :] - qx
    for head, (dx, dy) in enumerate(offsets):
        peak_y, peak_x = divmod(int(maps[head].argmax()), grid[1])
        assert abs(peak_x - qx - dx) <= 0.5 and abs(peak_y - qy - dy) <= 0.5, (head, peak_x - qx, peak_y - qy)
        centroid = ((maps[head] * xs).sum().item(), (maps[head] * ys).sum().item())
        assert centroid == pytest.approx((dx, dy), abs=1e-4)  # a Gaussian centred exactly at the head's offset


def test_init_matches_timm_local_init() -> None:
    ours = timm.create_model("gpsa_convit_small")
    theirs = timm.create_model("convit_small")
    for i in range(10):
        torch.testing.assert_close(ours.blocks[i].attn.pos_proj.weight, theirs.blocks[i].attn.pos_proj.weight)
        torch.testing.assert_close(ours.blocks[i].attn.v.weight, torch.eye(432))
        torch.testing.assert_close(ours.blocks[i].attn.gating_param, torch.ones(9))


# ------------------------------------------------------------------------------------------------- caching


def test_positional_cache_per_grid_and_invalidated_by_updates() -> None:
    layer = GPSA(32, num_heads=4).eval()
    with torch.no_grad():
        first = layer.positional_attention((6, 9))
        assert layer.positional_attention((6, 9)) is first  # computed once per grid size
        other = layer.positional_attention((9, 6))
        assert other is not first and len(layer._factors) == 2
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    layer.pos_proj.weight.grad = torch.ones_like(layer.pos_proj.weight)
    optimizer.step()  # in-place update bumps the version counter
    with torch.no_grad():
        updated = layer.positional_attention((6, 9))
        assert updated is not first
        fresh = separable_positional_attention(
            layer.pos_proj.weight, layer.pos_proj.bias, axis_offsets(6), axis_offsets(9)
        )
    torch.testing.assert_close(updated, fresh)
    layer.load_state_dict(GPSA(32, num_heads=4).state_dict())
    with torch.no_grad():
        assert layer.positional_attention((6, 9)) is not updated


def test_positional_attention_computed_once_per_layer_and_grid(monkeypatch) -> None:
    import visiongates.layers.gpsa as gpsa

    calls = []
    original = gpsa.separable_positional_attention
    monkeypatch.setattr(gpsa, "separable_positional_attention", lambda *a: calls.append(1) or original(*a))
    model = timm.create_model("gpsa_convit_tiny").eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        model(x)
        assert len(calls) == 10  # one per GPSA layer
        model(x)
        model(x[:1])  # another batch size: same grid, same cache entry
        assert len(calls) == 10
        model(torch.randn(1, 3, 96, 64))
        assert len(calls) == 20  # a new grid size: once more per layer
    model.train()
    model(x)  # with gradients into pos_proj the factors are recomputed every forward
    model(x)
    assert len(calls) == 40


def test_no_cache_when_pos_proj_needs_grad() -> None:
    layer = GPSA(32, num_heads=4).train()
    layer.clear_cache()
    out = layer(torch.randn(2, 12, 32), (3, 4))
    assert not layer._factors  # only the parameter-free offsets are cached in training
    out.sum().backward()
    assert layer.pos_proj.weight.grad is not None and layer.pos_proj.weight.grad.abs().sum() > 0


def test_cache_filled_under_inference_mode_serves_training() -> None:
    layer = GPSA(32, num_heads=4)
    with torch.inference_mode():
        layer.eval()(torch.randn(1, 12, 32), (3, 4))
    layer.pos_proj.requires_grad_(False)  # frozen positions: cached factors meet a gradient through v
    layer.train()(torch.randn(1, 12, 32), (3, 4)).sum().backward()
    layer.pos_proj.requires_grad_(True)
    layer(torch.randn(1, 12, 32), (3, 4)).sum().backward()
    assert layer.v.weight.grad is not None


# -------------------------------------------------------------------------------------- class token paths


def test_without_class_token() -> None:
    model = timm.create_model("gpsa_convit_tiny", class_token=False, global_pool="avg", num_classes=3).eval()
    assert model.cls_token is None and "cls_token" not in model.state_dict()
    with torch.no_grad():
        tokens = model.forward_features(torch.randn(1, 3, 96, 128))
        assert tokens.shape == (1, 6 * 8, 192)
        assert model.forward_head(tokens).shape == (1, 3)
    with pytest.raises(ValueError):
        timm.create_model("gpsa_convit_tiny", class_token=False, global_pool="token", device="meta")
    with pytest.raises(ValueError):
        model.reset_classifier(3, "token")


def test_class_token_joins_before_first_plain_block(ours_tiny) -> None:
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        final, inter = ours_tiny.forward_intermediates(x, output_fmt="NLC")
        avg = ours_tiny.forward_head(final, pre_logits=True)
    assert final.shape == (1, 1 + 48, 192)
    assert all(y.shape == (1, 48, 192) for y in inter)  # the class token is stripped from every block output
    assert avg.shape == (1, 192)


def test_prune_before_class_token_drops_it(timm_tiny) -> None:
    model = timm.create_model("gpsa_convit_tiny").eval()
    model.load_state_dict(timm_tiny.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        (expected,) = model.forward_intermediates(x, indices=[5], intermediates_only=True)
        model.prune_intermediate_layers([5])
        (pruned,) = model.forward_intermediates(x, indices=[5], intermediates_only=True)
    assert model.cls_token is None and len(model.blocks) == 6 and model.num_classes == 0
    torch.testing.assert_close(pruned, expected)


def test_rejects_class_token_without_plain_blocks() -> None:
    with pytest.raises(ValueError):
        timm.create_model("gpsa_convit_tiny", local_up_to_layer=12, device="meta")
    model = timm.create_model("gpsa_convit_tiny", local_up_to_layer=12, class_token=False, global_pool="avg")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


# ----------------------------------------------------------------------------------------------- training


def test_grad_checkpointing_same_gradients() -> None:
    torch.manual_seed(0)
    model = timm.create_model("gpsa_convit_tiny", num_classes=4).train()
    x = torch.randn(1, 3, 48, 64)
    model(x).sum().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], rtol=1e-4, atol=1e-6, msg=n)


def test_attention_dropout_uses_dense_mixed_map() -> None:
    torch.manual_seed(0)
    layer = GPSA(32, num_heads=4, attn_drop=0.5).train()
    out = layer(torch.randn(2, 12, 32), (3, 4))
    out.sum().backward()
    assert layer.gating_param.grad is not None


def test_rejects_unknown_kwargs() -> None:
    with pytest.raises(TypeError):
        timm.create_model("gpsa_convit_tiny", device="meta", qk_scale=0.1)  # an official-code argument
