"""MSViT: mixed-scale tokenization, its inference paths, and the generalized batch-shaping loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import scipy.stats
import timm
import torch
import torch.nn.functional as F

import visiongates  # noqa: F401  registers the models
from visiongates.flops import count_macs
from visiongates.layers.mixed_scale import compact_slots, mixed_scale_layout, mixed_scale_slots
from visiongates.layers.scale_gate import gumbel_sigmoid_straight_through
from visiongates.losses import GeneralizedBatchShapingLoss, batch_shaping_loss, beta_cdf, relaxed_bernoulli_cdf
from visiongates.models.msvit import checkpoint_filter_fn


def _msvit_from_vit(size: tuple[int, int] = (224, 224), **kwargs) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A random plain timm DeiT-Ti and an MSViT-Ti holding its backbone weights (loaded by checkpoint_filter_fn)."""
    torch.manual_seed(0)
    vit = timm.create_model("deit_tiny_patch16_224", img_size=size, num_classes=10).eval()
    msvit = timm.create_model("msvit_tiny_patch16_224", img_size=size, num_classes=10, **kwargs).eval()
    msvit.load_state_dict(checkpoint_filter_fn(vit.state_dict(), msvit), strict=True)
    return vit, msvit


def _open_gates(model: torch.nn.Module, logit: float) -> None:
    with torch.no_grad():
        model.scale_gate.mlp[-1].bias.fill_(logit)
        model.scale_gate.mlp[-1].weight.zero_()


# ------------------------------------------------------------------------------------------- equivalence to ViT
@pytest.mark.parametrize("path", ["drop", "masked"])
def test_all_fine_equals_plain_vit(path):
    vit, msvit = _msvit_from_vit((224, 224))
    msvit.set_token_path(path)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        reference = vit(x)
        _open_gates(msvit, 50.0)  # every gate says "fine", through the gate path
        through_gate = msvit(x)
        assert msvit.last_gate().mask.min() == 1
        msvit.set_scale_mode("fine")  # the gate bypassed
        forced = msvit(x)
    torch.testing.assert_close(through_gate, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(forced, reference, rtol=0, atol=1e-5)


def test_gate_target_one_is_the_plain_vit_and_non_square_sizes_work():
    torch.manual_seed(0)
    vit = timm.create_model("deit_tiny_patch16_224", num_classes=10, dynamic_img_size=True).eval()
    msvit = timm.create_model("msvit_tiny_patch16_224", num_classes=10, gate_target=1.0).eval()
    msvit.load_state_dict(checkpoint_filter_fn(vit.state_dict(), msvit))
    assert msvit.scale_mode == "fine" and msvit.gate_loss is None and msvit.auxiliary_loss() is None
    x = torch.randn(1, 3, 112, 176)
    with torch.no_grad():
        torch.testing.assert_close(msvit(x), vit(x), rtol=0, atol=1e-5)


def test_plain_vit_and_distilled_deit_files_load_through_timm(tmp_path):
    """A state dict of timm's DeiT (plain or distilled) loads into the backbone; the gate keeps its new weights."""
    torch.manual_seed(0)
    for source in ("deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"):
        vit = timm.create_model(source)
        path = tmp_path / f"{source}.pth"
        torch.save(vit.state_dict(), path)
        overlay = dict(file=str(path))
        model = timm.create_model("msvit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=overlay)
        own = model.state_dict()
        for key, value in vit.state_dict().items():
            if key == "pos_embed" and "distilled" in source:
                torch.testing.assert_close(own[key], torch.cat((value[:, :1], value[:, 2:]), dim=1))
            elif key in own:
                torch.testing.assert_close(own[key], value, msg=key)
        assert "dist_token" not in own and any(k.startswith("scale_gate.") for k in own)


# --------------------------------------------------------------------------------------------------- tokenizing
def _coverage(layout) -> torch.Tensor:
    """How many kept tokens cover each fine cell: 1 for a fine cell's own token, 4 cells for a coarse token."""
    batch = layout.fine_cells.shape[0]
    height, width = layout.fine_grid
    occupied = layout.occupied.reshape(batch, height, width)
    fine_own = (layout.fine_cells > 0.5) & occupied
    coarse_tokens = occupied & ~(layout.fine_cells > 0.5)  # top-left slots of coarse regions
    count = fine_own.int()
    rows, cols = layout.coarse_grid
    region = coarse_tokens[:, 0 : 2 * rows : 2, 0 : 2 * cols : 2].int()
    count[:, : 2 * rows, : 2 * cols] += region.repeat_interleave(2, 1).repeat_interleave(2, 2)
    return count


@pytest.mark.parametrize("fine_grid", [(6, 6), (7, 9)])
def test_each_region_is_covered_exactly_once(fine_grid):
    """At every position the fine and coarse masks are complementary: one coarse token xor its 4 fine tokens."""
    torch.manual_seed(0)
    rows, cols = fine_grid[0] // 2, fine_grid[1] // 2
    logits = torch.randn(16, rows, cols, requires_grad=True)
    for mask in (gumbel_sigmoid_straight_through(logits), (logits > 0).float()):
        layout = mixed_scale_layout(mask, fine_grid)
        assert torch.equal(_coverage(layout), torch.ones(16, *fine_grid, dtype=torch.int32))
        fine = mask > 0.5
        kept = layout.occupied.sum(1)
        leftover = fine_grid[0] * fine_grid[1] - 4 * rows * cols
        assert torch.equal(kept, 4 * fine.flatten(1).sum(1) + (~fine).flatten(1).sum(1) + leftover)


def test_slots_hold_one_token_per_region_and_pass_gradient_to_the_gate():
    torch.manual_seed(0)
    fine = torch.randn(4, 6, 6, 8)
    coarse = torch.randn(4, 3, 3, 8)
    logits = torch.randn(4, 3, 3, requires_grad=True)
    mask = gumbel_sigmoid_straight_through(logits)
    layout = mixed_scale_layout(mask, (6, 6))
    slots = mixed_scale_slots(fine, coarse, layout).reshape(4, 6, 6, 8)
    hard = mask.detach() > 0.5
    for b in range(4):
        for i in range(3):
            for j in range(3):
                cell = slots[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                if hard[b, i, j]:
                    assert torch.equal(cell, fine[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2])
                else:
                    assert torch.equal(cell[0, 0], coarse[b, i, j])
                    assert cell.flatten(0, 1)[1:].abs().sum() == 0
    slots.square().sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_coarse_tokens_share_the_patch_embedding_and_mean_position():
    """Coarse token = the fine patch embedding of the region resized to 16x16 (bilinear 1/2 = 2x2 mean), plus the 2x2
    mean of the fine position embeddings."""
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=96).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        _, coarse, _ = model._embed(x, with_coarse=True)
        resized = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=False)
        pos = model.pos_embed[:, 1:].reshape(1, 6, 6, -1)
        coarse_pos = pos.unfold(1, 2, 2).unfold(2, 2, 2).mean((-1, -2))
        expected = model.patch_embed(resized) + coarse_pos
    torch.testing.assert_close(coarse, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ inference paths
def test_dropped_batched_masked_and_one_by_one_agree():
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=128, num_classes=10).eval()
    _open_gates(model, 0.0)
    with torch.no_grad():
        model.scale_gate.mlp[-1].weight.normal_(0, 1.0)  # mixed decisions
        x = torch.randn(4, 3, 128, 128)
        outputs = {}
        for path in ("drop", "masked"):
            model.set_token_path(path)
            outputs[path] = model(x)
        counts = model.last_gate().mask.flatten(1).sum(1)
        assert counts.unique().numel() > 1, "the batch should need padding"
        model.set_token_path("drop")
        one_by_one = torch.cat([model(x[i : i + 1]) for i in range(4)])
        for block in model.blocks:  # the explicit (additive-mask) attention path as well
            block.attn.fused_attn = False
        explicit = model(x)
    torch.testing.assert_close(outputs["drop"], outputs["masked"], rtol=0, atol=1e-5)
    torch.testing.assert_close(one_by_one, outputs["masked"], rtol=0, atol=1e-5)
    torch.testing.assert_close(explicit, outputs["masked"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_embedding_only_kept_tokens_equals_gathering_every_token(batch):
    """The dropped path embeds only the kept tokens; they equal the ones gathered from the full fine and coarse maps
    (non-square grid with a leftover fine row and column, mixed decisions, padding across the batch)."""
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=(112, 144)).eval()
    x = torch.randn(batch, 3, 112, 144)
    mask = (torch.rand(batch, 3, 4) < 0.4).float()
    layout = mixed_scale_layout(mask, (7, 9))
    with torch.no_grad():
        fine, coarse, cls = model._embed(x, with_coarse=True)
        slots = mixed_scale_slots(fine, coarse, layout)
        expected, expected_index, expected_valid = compact_slots(slots, layout.occupied)
        tokens, index, valid, kept_cls = model._embed_kept(x, layout)
    torch.testing.assert_close(index, expected_index, rtol=0, atol=0)
    torch.testing.assert_close(valid, expected_valid, rtol=0, atol=0)
    torch.testing.assert_close(tokens[valid], expected[expected_valid], rtol=0, atol=1e-5)
    torch.testing.assert_close(kept_cls, cls, rtol=0, atol=0)
    assert tokens.shape[1] < 7 * 9


def test_class_token_forward_equals_the_dense_features_head():
    """forward() skips the dense patch tokens when the head reads the class token; the logits are unchanged."""
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=128, num_classes=5).eval()
    with torch.no_grad():
        model.scale_gate.mlp[-1].weight.normal_(0, 1.0)
        x = torch.randn(2, 3, 128, 128)
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)), rtol=0, atol=1e-6)


def _flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    return count_macs(model, x)


def test_dropping_tokens_lowers_compute():
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224").eval()
    x = torch.randn(1, 3, 224, 224)
    _open_gates(model, 50.0)
    all_fine = _flops(model, x)
    _open_gates(model, -50.0)
    all_coarse = _flops(model, x)
    model.set_token_path("masked")
    masked = _flops(model, x)
    assert all_coarse < 0.3 * all_fine  # 50 tokens instead of 197
    assert masked >= all_fine  # the static path keeps the ViT's shapes


def test_dense_features_unpool_coarse_tokens():
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", features_only=True, img_size=128).eval()
    _open_gates(model.model, -50.0)  # every region coarse
    with torch.no_grad():
        features = model(torch.randn(2, 3, 128, 128))
    assert [f.shape for f in features] == [torch.Size([2, 192, 8, 8])] * 3
    for f in features:
        blocks = f.unfold(2, 2, 2).unfold(3, 2, 2)  # [B, C, 4, 4, 2, 2]: every 2x2 block holds one token
        assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_masked_path_exports_with_torch_export():
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=96, num_classes=10, token_path="masked").eval()
    x = torch.randn(2, 3, 96, 96)
    program = torch.export.export(model, (x,))
    other = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        for inputs in (x, other):
            torch.testing.assert_close(program.module()(inputs), model(inputs), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_both_paths_export_to_onnx_and_run_in_onnxruntime(tmp_path):
    """The static masked path (batch 2) and the dropped path at batch 1 (data-dependent token count) both go through
    the dynamo ONNX exporter and match eager in onnxruntime on other images."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=96, num_classes=10).eval()
    with torch.no_grad():
        model.scale_gate.mlp[-1].weight.normal_(0, 1.0)
    for path, batch in (("masked", 2), ("drop", 1)):
        model.set_token_path(path)
        onnx_file = tmp_path / f"msvit_{path}.onnx"
        torch.onnx.export(model, (torch.randn(batch, 3, 96, 96),), f=str(onnx_file), dynamo=True)
        session = ort.InferenceSession(str(onnx_file))
        counts = set()
        for seed in range(3):
            x = torch.randn(batch, 3, 96, 96, generator=torch.Generator().manual_seed(seed))
            (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
            with torch.no_grad():
                np.testing.assert_allclose(out, model(x).numpy(), rtol=0, atol=1e-4)
            counts.add(int(model.last_gate().mask.sum()))
        assert len(counts) > 1, "inputs with different numbers of fine regions"


# -------------------------------------------------------------------------------------------- batch-shaping loss
def test_beta_cdf_matches_scipy_and_its_gradient_is_the_density():
    x = torch.linspace(0, 1, 257, dtype=torch.float64)
    for a, b in [(3.0, 7.0), (0.5, 0.5), (0.3, 2.0), (1.0, 1.0), (2.0, 0.4), (50.0, 50.0), (1.5, 8.5)]:
        np.testing.assert_allclose(beta_cdf(x, a, b).numpy(), scipy.special.betainc(a, b, x.numpy()), atol=1e-12)
    inner = torch.tensor([0.05, 0.3, 0.62, 0.9], dtype=torch.float64, requires_grad=True)
    beta_cdf(inner, 3.0, 7.0).sum().backward()
    np.testing.assert_allclose(inner.grad.numpy(), scipy.stats.beta.pdf(inner.detach().numpy(), 3, 7), rtol=1e-10)


def _cvm_direct(samples: np.ndarray, cdf) -> float:
    """Cramér-von Mises sum written out: (1/N) sum_i (i/(N+1) - F(x_(i)))^2."""
    ordered = np.sort(samples)
    n = len(ordered)
    return float(sum((i / (n + 1) - cdf(ordered[i - 1])) ** 2 for i in range(1, n + 1)) / n)


def test_batch_shaping_loss_matches_a_direct_cramer_von_mises_sum():
    rng = np.random.default_rng(0)
    samples = rng.uniform(0.01, 0.99, size=(5, 32))
    mu, tau = rng.uniform(0.1, 0.9, size=5), rng.uniform(0.1, 0.9, size=5)

    def rb_cdf(value, k):  # sigmoid(tau logit(x) - logit(mu)), written with numpy
        return 1.0 / (1.0 + math.exp(-(tau[k] * math.log(value / (1 - value)) - math.log(mu[k] / (1 - mu[k])))))

    expected = np.mean([_cvm_direct(samples[k], lambda v, k=k: rb_cdf(v, k)) for k in range(5)])
    got = batch_shaping_loss(
        torch.tensor(samples),
        lambda s: relaxed_bernoulli_cdf(s, torch.tensor(mu)[:, None], torch.tensor(tau)[:, None]),
    )
    assert math.isclose(float(got), expected, rel_tol=1e-10)
    beta_expected = _cvm_direct(samples[0], lambda v: scipy.stats.beta.cdf(v, 3, 7))
    beta_got = batch_shaping_loss(torch.tensor(samples[0]), lambda s: beta_cdf(s, 3.0, 7.0))
    assert math.isclose(float(beta_got), beta_expected, rel_tol=1e-10)


@pytest.mark.parametrize("hyperprior", ["beta", "normal"])
def test_generalized_loss_terms_match_an_independent_computation(hyperprior):
    torch.manual_seed(0)
    loss = GeneralizedBatchShapingLoss((2, 3), target=0.3, weight=2.0, hyperprior=hyperprior, temperature_weight=0.1)
    with torch.no_grad():
        loss.mean_logit.normal_(0, 1)
        loss.temperature_logit.normal_(0, 1)
    gates = torch.rand(16, 2, 3, dtype=torch.float64).clamp(0.01, 0.99)
    mu = torch.sigmoid(loss.mean_logit).detach().double().flatten().numpy()
    tau = torch.sigmoid(loss.temperature_logit).detach().double().flatten().numpy()
    columns = gates.flatten(1).numpy()
    prior = np.mean(
        [
            _cvm_direct(
                columns[:, k],
                lambda v, k=k: scipy.stats.logistic.cdf(tau[k] * scipy.special.logit(v) - scipy.special.logit(mu[k])),
            )
            for k in range(6)
        ]
    )
    hyper_cdf = (
        (lambda v: scipy.stats.beta.cdf(v, 3.0, 7.0))
        if hyperprior == "beta"
        else (lambda v: scipy.stats.norm.cdf(v, 0.3, 0.1))
    )
    hyper = _cvm_direct(mu, hyper_cdf)
    terms = {k: v.detach() for k, v in loss.terms(gates).items()}
    assert math.isclose(float(terms["prior"]), prior, rel_tol=1e-5)
    assert math.isclose(float(terms["hyperprior"]), hyper, rel_tol=1e-5)
    assert math.isclose(float(terms["temperature"]), tau.mean(), rel_tol=1e-5)
    total = 2.0 * (prior + hyper + 0.1 * tau.mean())
    assert math.isclose(float(loss(gates).detach()), total, rel_tol=1e-5)


def test_batch_shaping_gradient_reaches_the_gate_and_the_priors():
    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=96, num_classes=10, gate_target=0.3).train()
    model(torch.randn(8, 3, 96, 96))
    aux = model.auxiliary_loss()
    assert aux is not None and aux.ndim == 0 and aux > 0
    aux.backward()
    for name, param in model.named_parameters():
        if name.startswith(("scale_gate.mlp.0", "scale_gate.mlp.4", "gate_loss.")):
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert {"gate_loss.mean_logit", "gate_loss.temperature_logit"} <= model.no_weight_decay()


def test_model_copies_after_a_training_forward():
    """EMA (a deep copy) and pickling work while the last decision still holds its autograd graph."""
    from timm.utils import ModelEmaV3

    model = timm.create_model("msvit_tiny_patch16_224", img_size=64, num_classes=3, gate_target=0.3).train()
    model(torch.randn(4, 3, 64, 64))
    ema = ModelEmaV3(model, decay=0.9)
    ema.update(model, step=1)
    assert ema.module.last_gate() is None and model.last_gate() is not None


def test_generalized_batch_shaping_alone_sets_the_share_of_open_gates():
    """Free gate logits (64 images x 9 positions) trained with gBaS alone: the share above 1/2 reaches the target."""
    torch.manual_seed(0)
    logits = torch.nn.Parameter(torch.randn(64, 3, 3) * 0.1)
    loss = GeneralizedBatchShapingLoss((3, 3), target=0.3)
    optimizer = torch.optim.Adam([logits, *loss.parameters()], lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss(torch.sigmoid(logits)).backward()
        optimizer.step()
    share = (logits > 0).float().mean().item()
    probs = torch.sigmoid(logits)
    assert abs(share - 0.3) <= 0.1, share
    assert ((probs < 0.1) | (probs > 0.9)).float().mean() > 0.6  # mostly near-binary gates, not all at one value


def test_gate_options_are_checked():
    with pytest.raises(ValueError, match="share"):
        timm.create_model("msvit_tiny_patch16_224", device="meta", gate_target=1.5)
    with pytest.raises(ValueError, match="token_path"):
        timm.create_model("msvit_tiny_patch16_224", device="meta", token_path="sparse")
    with pytest.raises(ValueError, match="global_pool"):
        timm.create_model("msvit_tiny_patch16_224", device="meta", global_pool="map")


# ------------------------------------------------------------------------------------------------------- training
def test_train_py_adds_the_batch_shaping_loss_and_eval_rebuilds_the_model(tmp_path):
    """tools/train.py options gate_target / gate_loss_weight reach the model, its auxiliary_loss() is trained, and a
    checkpoint is rebuilt with the same options by tools/eval.py's loader."""
    from quick_train import DIGITS_32, TWO_STEPS, train_run

    from visiongates.engine import load_checkpoint
    from visiongates.engine.evaluate import load_classifier

    gates = dict(gate_target=0.3, gate_loss_weight=2.0)
    train_run(tmp_path / "run", model="msvit_tiny_patch16_224", **DIGITS_32, **TWO_STEPS, **gates)
    state = load_checkpoint(tmp_path / "run" / "last.pth")["model"]
    assert state["gate_loss.mean_logit"].shape == (1, 1)  # priors laid out on the training grid (32 px: 1 region)
    assert not torch.allclose(state["gate_loss.mean_logit"], torch.full((1, 1), math.log(0.3 / 0.7)))
    model, _ = load_classifier(tmp_path / "run" / "last.pth")
    assert model.gate_loss is not None and model.gate_loss.weight == 2.0 and model.gate_loss.target == 0.3
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.slow
def test_short_training_on_digits_reaches_the_target_share(tmp_path):
    """A shorter version of the run in docs/benchmarks.md "MSViT vs the all-fine ViT": 2 epochs of MSViT-Ti on the
    real digits at 64 px with a 30% target; the share of regions kept fine on the validation split ends within 10
    points of it."""
    from quick_train import train_run
    from torch.utils.data import DataLoader

    from visiongates.benchmarks.msvit import gate_statistics
    from visiongates.data import DigitsDataset, collate_skip, eval_transform
    from visiongates.engine.evaluate import load_classifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 17-token ViT gains nothing from a second thread, and loses much on a busy machine
    try:
        config = Path(__file__).resolve().parents[1] / "configs" / "cls" / "digits_msvit_tiny.yaml"
        train_run(tmp_path / "run", config_file=config, epochs=2)
        model, _ = load_classifier(tmp_path / "run" / "last.pth")
        loader = DataLoader(
            DigitsDataset("val", eval_transform(64, crop_pct=1.0)), batch_size=120, collate_fn=collate_skip
        )
        stats = gate_statistics(model, loader)
    finally:
        torch.set_num_threads(threads)
    print(f"digits val after 2 epochs: {stats}")
    logged = json.loads((tmp_path / "run" / "log.json").read_text())[-1]
    assert logged["val_fine_share"] == pytest.approx(stats["fine_share"], abs=1e-9)  # what train.py logs per epoch
    assert 0.0 < logged["train_fine_share"] < 1.0
    assert abs(stats["fine_share"] - 0.3) <= 0.1, stats
    assert stats["top1"] > 20.0, stats  # learning, not chance (10%)


def test_gate_fit_and_compute_comparison_used_by_the_benchmark():
    """tools/analysis/benchmark_msvit.py's pieces: gBaS-only gate fitting reaches the share; the comparison's
    figures agree."""
    from visiongates.benchmarks.msvit import compare_with_static, comparison_table, fit_gate_to_target
    from visiongates.models.msvit import to_plain_vit

    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224", img_size=64, num_classes=3).eval()
    images = torch.randn(64, 3, 64, 64) * torch.rand(64, 1, 1, 1) * 2  # images of varied contrast
    batches = [(images[i : i + 32], torch.zeros(32, dtype=torch.long), 0) for i in range(0, 64, 32)]
    fitted = fit_gate_to_target(model, batches, target=0.3, epochs=40, lr=0.02)
    assert abs(fitted["fine_share"] - 0.3) <= 0.1, fitted
    few = [(images[:8], torch.zeros(8, dtype=torch.long), 0)]
    result = compare_with_static(model, to_plain_vit(model).eval(), few, latency_images=2, reps=1)
    dynamic, static = result["dynamic"], result["static"]
    assert static["tokens"] == 17 and static["fine_share"] == 1.0
    assert dynamic["tokens"] == pytest.approx(1 + 16 - 3 * 4 * (1 - dynamic["fine_share"]))  # 4x4 cells, 4 regions
    assert dynamic["gmacs"] < static["gmacs"] and dynamic["gmacs"] <= result["batched_gmacs"]
    assert "MSViT, dropped tokens" in comparison_table(result)
