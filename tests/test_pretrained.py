"""Pretrained weights the timm way: the released tags of every family, offline loading of a file in each publisher's
layout (`pretrained=True` + `pretrained_cfg_overlay=dict(file=...)`), the conversion tool, and ViG's official
evaluation numerics. Publisher-layout files are written from the official parameter names and shapes (the helpers
of test_vig / test_gated_resnet / test_maxim) or, for timm-published weights, by timm's own models."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from test_gated_resnet import _official_layout as cbam_official_layout
from test_maxim import _official_tree as maxim_official_tree
from test_vig import official_attention, official_state_dict

import visiongates  # noqa: F401
from visiongates.checkpoint import check_state_dict
from visiongates.convert.checkpoint import convert_checkpoint
from visiongates.layers.bigla_attn import BiGlaAttention
from visiongates.models.msvit import to_plain_vit

REPO = Path(__file__).resolve().parents[1]


def _by_hand(name: str, raw: dict, **kwargs) -> torch.nn.Module:
    """The model loaded without timm's pretrained path: family filter, exact key check, strict load."""
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs)
    module = sys.modules[type(model).__module__]
    state = module.checkpoint_filter_fn(raw, model)
    check_state_dict(model, state, source="test file")  # no missing, unexpected or mis-shaped key
    model.load_state_dict(state, strict=True)
    return model.eval()


def _through_timm(name: str, path: Path, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    overlay = dict(file=str(path))
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs).eval()


def _assert_same(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor | None = None) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    if x is not None:
        with torch.no_grad():
            torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------- tags and sources
def test_families_with_released_weights_list_them():
    assert timm.list_pretrained("gpsa_convit*") == [f"gpsa_convit_{s}.fb_in1k" for s in ("base", "small", "tiny")]
    assert len(timm.list_pretrained("vig_gla*")) == 6
    assert all(n.endswith(".hustvl_in1k") for n in timm.list_pretrained("vig_gla*"))
    assert timm.list_pretrained("msvit*") == [f"msvit_{s}_patch16_224.deit_fb_in1k" for s in ("small", "tiny")]
    assert len(timm.list_pretrained("maxim_3s.*")) == 5 and len(timm.list_pretrained("maxim_2s.*")) == 6
    assert "seresnet50.a1_in1k" in timm.list_pretrained("seresnet50*")  # timm's own
    for pattern in ("das_resnet*", "attention_unet*", "maxim_s*", "maxim_m*", "gpsa_convit_*_plus*"):
        assert timm.list_pretrained(pattern) == [], pattern


def test_sources_are_the_publishers_ids():
    cfg = timm.models.get_pretrained_cfg
    for size in ("tiny", "small", "base"):  # timm's own cfgs name the same hub repos
        assert cfg(f"gpsa_convit_{size}.fb_in1k").hf_hub_id == cfg(f"convit_{size}.fb_in1k").hf_hub_id
    for size in ("tiny", "small"):
        ours, deit = cfg(f"msvit_{size}_patch16_224.deit_fb_in1k"), cfg(f"deit_{size}_patch16_224.fb_in1k")
        assert (ours.hf_hub_id, ours.url) == (deit.hf_hub_id, deit.url)
    files = {"tiny": "vig_t_77p2acc.pth", "h_tiny": "vig_h_t_82p8acc.pth", "h_base": "vig_h_b_84p2acc.pth"}
    for variant, filename in files.items():
        assert (cfg(f"vig_gla_{variant}").hf_hub_id, cfg(f"vig_gla_{variant}").hf_hub_filename) == (
            "hustvl/ViG",
            filename,
        )
    sidd = cfg("maxim_3s.denoising_sidd")
    assert sidd.custom_load and sidd.url[0].endswith("/gresearch/maxim/ckpt/Denoising/SIDD/checkpoint.npz")
    assert len({cfg(n).url[1] for n in timm.list_pretrained("maxim*")}) == 11  # distinct cache file names


def test_cbam_weights_are_a_documented_manual_download():
    cfg = timm.models.get_pretrained_cfg("cbam_resnet50")
    assert cfg.tag == "jongchan_in1k" and not cfg.has_weights
    # the official README's current link (its 2022-09-12 revision), not the dead Dropbox share it replaced
    assert "drive.google.com/file/d/1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO" in cfg.notes[0]
    with pytest.raises(RuntimeError, match="manual download of the ResNet50\\+CBAM checkpoint") as error:
        timm.create_model("cbam_resnet50", pretrained=True)
    assert "drive.google.com" in str(error.value) and "dropbox" not in str(error.value).lower()


# ----------------------------------------------------------------------- offline: publisher layout -> timm loader
def test_convit_from_timms_hub_file(tmp_path):
    torch.manual_seed(1)
    reference = timm.create_model("convit_tiny").eval()  # the hub file is timm's convit_tiny state dict
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = _through_timm("gpsa_convit_tiny.fb_in1k", path)
    x = torch.randn(1, 3, 224, 224)
    _assert_same(model, _by_hand("gpsa_convit_tiny", load_file(str(path))), x)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)


def test_msvit_from_the_official_deit_file(tmp_path):
    torch.manual_seed(1)
    deit = timm.create_model("deit_tiny_patch16_224").eval()
    path = tmp_path / "deit_tiny_patch16_224-a1311bcf.pth"
    torch.save({"model": deit.state_dict()}, path)  # facebookresearch/deit's release wraps the weights in 'model'
    model = _through_timm("msvit_tiny_patch16_224.deit_fb_in1k", path)
    x = torch.randn(1, 3, 224, 224)
    _assert_same(model, _by_hand("msvit_tiny_patch16_224", torch.load(path, weights_only=True)), x)
    with torch.no_grad():
        torch.testing.assert_close(to_plain_vit(model)(x), deit(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["vig_gla_tiny", pytest.param("vig_gla_h_tiny", marks=pytest.mark.slow)])
def test_vig_from_the_official_release_file(name, tmp_path):
    path = tmp_path / "vig_official.pth"
    official = {k: 0.05 * v for k, v in official_state_dict(name).items()}
    torch.save(official, path)  # the released files are bare state dicts
    model = _through_timm(f"{name}.hustvl_in1k", path)
    plain = name == "vig_gla_tiny"
    hand = _by_hand(name, torch.load(path, weights_only=True), **(dict(official_eval_numerics=True) if plain else {}))
    _assert_same(model, hand, torch.randn(1, 3, 64, 64))
    if plain:  # the official tag evaluates with the official numerics; a fresh model does not
        assert all(b.attn.official_eval_numerics for b in model.blocks)
        assert not any(b.attn.official_eval_numerics for b in timm.create_model(name).blocks)


def test_cbam_from_the_official_checkpoint_layout(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("cbam_resnet50").eval()
    path = tmp_path / "RESNET50_CBAM_new_name_wrap.pth"
    torch.save(cbam_official_layout(source.state_dict()), path)
    model = _through_timm("cbam_resnet50.jongchan_in1k", path)
    _assert_same(model, _by_hand("cbam_resnet50", torch.load(path, weights_only=True)))
    _assert_same(model, source, torch.randn(1, 3, 64, 64))


def _maxim_npz(path: Path, features: int, stages: int, scales: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tree = maxim_official_tree(features, stages, scales)
    arrays = {f"opt/target/{k}": (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in tree.items()}
    np.savez(path, **arrays)
    return arrays


@pytest.mark.slow  # MAXIM-2S (14M parameters) built twice
def test_maxim_from_the_official_flax_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    arrays = _maxim_npz(path, 32, 2, 3)
    model = _through_timm("maxim_2s.deraining_rain13k", path)  # a local .npz: timm's custom_load, no flag needed
    _assert_same(model, _by_hand("maxim_2s", arrays))


# ---------------------------------------------------------------------------------------------- conversion tool
def test_convert_reports_and_round_trips(tmp_path):
    official = official_state_dict("vig_gla_tiny")
    official["outnorm0.weight"] = torch.ones(192)  # an mmdet-backbone extra the filter drops
    src = tmp_path / "vig_t_77p2acc.pth"
    torch.save(official, src)
    out = tmp_path / "vig_gla_tiny.safetensors"
    report = convert_checkpoint(src, "vig_gla_tiny", out)
    assert report.left_out == ["outnorm0.weight"] and report.not_in_source == [] and not report.combined
    assert len(report.mapped) == len(official) - 1
    assert ("blocks.3.attn.qkv_proj.weight", "blocks.3.attn.qkv.weight") in report.mapped
    loaded = load_file(str(out))
    pretrained = _through_timm("vig_gla_tiny", src)
    assert loaded.keys() == pretrained.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in pretrained.state_dict().items())
    _assert_same(_through_timm("vig_gla_tiny", out), pretrained)  # the converted file loads with no filter work


def test_convert_flax_npz_maps_every_array(tmp_path):
    src = tmp_path / "checkpoint.npz"
    arrays = _maxim_npz(src, 32, 1, 1)
    report = convert_checkpoint(src, "maxim_s1", tmp_path / "maxim_s1.safetensors")
    assert len(report.mapped) == len(arrays) and not report.left_out and not report.not_in_source
    assert ("stage_0_input_conv_0/kernel", "stages.0.input_convs.0.weight") in report.mapped


@pytest.mark.slow  # two interpreter start-ups
def test_convert_cli_prints_the_mapping_and_fails_cleanly(tmp_path):
    torch.manual_seed(0)
    src = tmp_path / "deit_tiny_distilled.pth"
    torch.save({"model": timm.create_model("deit_tiny_distilled_patch16_224").state_dict()}, src)
    tool = [sys.executable, str(REPO / "tools" / "convert_checkpoint.py"), str(src)]
    done = subprocess.run(
        [*tool, "--model", "msvit_tiny_patch16_224", "--output", str(tmp_path / "m.safetensors")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "left out of the source: 3" in done.stdout and "head_dist.weight" in done.stdout
    assert "not in the source (kept from the model's initialisation)" in done.stdout and "scale_gate." in done.stdout
    bad = subprocess.run([*tool, "--model", "vig_gla_tiny"], capture_output=True, text=True, timeout=300)
    last = bad.stderr.strip().splitlines()[-1]  # (the lines before are INFO logs)
    assert bad.returncode == 2 and last.startswith("error: ") and "vig_gla_tiny" in last
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------ ViG official eval numerics
def test_official_eval_numerics_match_the_official_eval_branch():
    torch.manual_seed(0)
    attn = BiGlaAttention(64, 2, official_eval_numerics=True, dtype=torch.float64)
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    with torch.no_grad():
        attn.qkv.weight.mul_(0.01)  # small attention outputs, where the norm's epsilon matters
    hw, x = (5, 7), torch.randn(2, 35, 64, dtype=torch.float64)
    with torch.no_grad():
        train_out = attn.train()(x, hw)  # training mode: the official training branch, option or not
        torch.testing.assert_close(train_out, official_attention(attn, x, hw, False, False))
        official_eval = attn.eval()(x, hw)
        torch.testing.assert_close(official_eval, official_attention(attn, x, hw, False, False, eval_branch=True))
        attn.official_eval_numerics = False
        plain_eval = attn(x, hw)
        assert (official_eval - plain_eval).abs().max() > 1e-3  # a visible change here
        attn.norm_attn.eps = 4e-6  # what the extra halving amounts to: RMSNorm(o / 2, eps) = RMSNorm(o, 4 eps)
        torch.testing.assert_close(attn(x, hw), official_eval)
