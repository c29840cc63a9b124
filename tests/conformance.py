"""The model-conformance checks every visiongates family must pass (after timm's own tests/test_models.py).

Each check takes a registered model name; tests/test_conformance.py runs them over the whole registry, so a new
family is covered as soon as its module is imported by `visiongates.models`.
"""

from __future__ import annotations

import io
import math

import timm
import torch
import torchvision
from timm.models import FeatureInfo
from torch import nn

from visiongates.models import model_facts

TARGET_SIZE = 96  # small inputs keep the suite fast on 2 CPU cores


def input_size(name: str, target: int = TARGET_SIZE) -> tuple[int, int]:
    """A small square input the model accepts: its cfg's min size, or `target` rounded up to its size multiple."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg.fixed_input_size:
        return tuple(cfg.input_size[-2:])
    side = max(target, *(cfg.min_input_size or (0, 0, 0))[-2:])
    return side, side


def is_restoration(name: str) -> bool:
    facts = model_facts(name)
    return facts is not None and facts.task == "restoration"


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_params_match_facts(name: str) -> None:
    """The parameter count equals the figure in the model file's `model_facts` table, within its tolerance."""
    facts = model_facts(name)
    assert facts is not None, f"{name}: its model file records no ModelFacts"
    model = timm.create_model(name, device="meta")
    params_m = count_params(model) / 1e6
    assert all(p.is_meta for p in model.parameters()), "meta-device creation left real tensors"
    assert math.isclose(params_m, facts.params_m, rel_tol=facts.params_tol), (
        f"{name}: {params_m:.3f}M parameters, table says {facts.params_m}M ({facts.source}), "
        f"tolerance {facts.params_tol}"
    )


def check_forward_backward(name: str) -> None:
    """Train-mode forward at the default-type input, then every parameter receives a gradient."""
    # MAXIM at 64 px, the size of its FX and TorchScript checks
    h, w = input_size(name, 64 if is_restoration(name) else TARGET_SIZE)
    x = torch.randn(1 if is_restoration(name) else 2, 3, h, w)  # MAXIM-M3 at batch 2, 96 px, peaks near 11 GB
    if is_restoration(name):
        # Multi-scale supervision: the coarse heads of the last stage only emit images for the loss, so the
        # gradient check backpropagates through every stage's image at every scale (return_all=True).
        model = timm.create_model(name).train()
        outputs = [o for stage in model(x, return_all=True) for o in stage]
        out = outputs[-1]
        assert out.shape == x.shape, f"restored image {tuple(out.shape)} != input {tuple(x.shape)}"
        loss = sum(o.float().square().mean() for o in outputs)
    else:
        model = timm.create_model(name, num_classes=7).train()
        out = model(x)
        assert out.shape == (2, 7)
        loss = out.float().square().mean()
    assert torch.isfinite(out).all()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without a gradient: {missing[:10]}"


def check_non_default_size(name: str) -> None:
    """Eval forward at a non-square size other than the default."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg.fixed_input_size:
        return
    h, w = input_size(name)
    multiple = 64 if is_restoration(name) else 32
    x = torch.randn(1, 3, h + multiple, w + 2 * multiple)
    model = timm.create_model(name).eval()
    with torch.no_grad():
        out = model(x)
    expected = x.shape if is_restoration(name) else (1, model.num_classes)
    assert tuple(out.shape) == tuple(expected)
    assert torch.isfinite(out).all()


def _check_feature_maps(features: list[torch.Tensor], info: FeatureInfo, size: tuple[int, int], batch: int) -> None:
    assert len(features) == len(info.channels()), f"{len(features)} maps, {len(info.channels())} feature_info entries"
    for feature, channels, reduction in zip(features, info.channels(), info.reduction()):
        assert feature.shape[0] == batch and feature.shape[1] == channels, (tuple(feature.shape), channels)
        assert feature.shape[2] <= math.ceil(size[0] / reduction) + 1, (tuple(feature.shape), reduction)
        assert feature.shape[3] <= math.ceil(size[1] / reduction) + 1, (tuple(feature.shape), reduction)
        assert torch.isfinite(feature).all()


def check_features_only(name: str) -> None:
    """`features_only=True` returns one NCHW map per feature_info entry with the channels and strides it declares."""
    size = input_size(name)
    model = timm.create_model(name, features_only=True).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, *size))
    _check_feature_maps(features, model.feature_info, size, batch=1)


def check_forward_intermediates(name: str) -> None:
    """forward_intermediates agrees with forward_features and feature_info; pruning keeps the kept outputs."""
    size = input_size(name)
    model = timm.create_model(name).eval()
    info = FeatureInfo(model.feature_info, range(len(model.feature_info)))
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        reference = model.forward_features(x)
        only = model.forward_intermediates(x, intermediates_only=True)
    _check_feature_maps(intermediates, info, size, batch=1)
    torch.testing.assert_close(final, reference, rtol=1e-4, atol=1e-5)
    for a, b in zip(only, intermediates):
        torch.testing.assert_close(a, b)
    last = len(model.feature_info) - 1
    if last >= 1:
        kept = model.prune_intermediate_layers(indices=[last - 1], prune_norm=True, prune_head=True)
        assert list(kept) == [last - 1]
        with torch.no_grad():
            pruned = model.forward_intermediates(x, indices=[last - 1], intermediates_only=True)
        torch.testing.assert_close(pruned[0], intermediates[last - 1], rtol=1e-4, atol=1e-5)


def check_classifier_api(name: str) -> None:
    """get_classifier / reset_classifier / forward_head(pre_logits) behave as timm's models do."""
    if is_restoration(name):
        return
    size = input_size(name)
    model = timm.create_model(name).eval()
    assert isinstance(model.get_classifier(), torch.nn.Module)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pre_logits.shape == (1, model.num_features)
        model.reset_classifier(5)
        assert model(x).shape == (1, 5)
        model.reset_classifier(0)
        assert model(x).shape == (1, model.num_features)
    assert isinstance(model.no_weight_decay() if hasattr(model, "no_weight_decay") else set(), set)
    matcher = model.group_matcher()
    assert "stem" in matcher and "blocks" in matcher


def _gradients_and_recomputes(model: torch.nn.Module, x: torch.Tensor, checkpointing: bool):
    """One train-mode forward and backward; returns each parameter's gradient and how many module forwards the
    backward pass ran (the recomputation that checkpointing trades for memory)."""
    model.set_grad_checkpointing(checkpointing)
    model.zero_grad(set_to_none=True)
    calls = [0]
    hooks = [m.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1)) for m in model.modules()]
    try:
        torch.manual_seed(1)  # the same dropout, drop-path and Gumbel samples in both runs
        loss = model(x).float().square().mean()
        forward_calls = calls[0]
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    return grads, calls[0] - forward_calls


def check_grad_checkpointing(name: str) -> None:
    """Gradient checkpointing changes memory, not results: in train mode, forward and backward with it off and on
    give the same gradients, and with it on the backward pass recomputes part of the forward (so a model whose
    `set_grad_checkpointing` does nothing, skips a block or checkpoints the wrong function fails)."""
    h, w = input_size(name, target=64)
    torch.manual_seed(0)
    model = timm.create_model(name, **({} if is_restoration(name) else {"num_classes": 7})).train()
    x = torch.randn(1 if is_restoration(name) else 2, 3, h, w)
    plain, plain_recomputes = _gradients_and_recomputes(model, x, checkpointing=False)
    checkpointed, recomputes = _gradients_and_recomputes(model, x, checkpointing=True)
    assert plain_recomputes == 0, f"{plain_recomputes} module forwards in the backward pass without checkpointing"
    assert recomputes > 0, "set_grad_checkpointing(True) recomputed nothing in the backward pass"
    for n, grad in plain.items():
        assert (grad is None) == (checkpointed[n] is None), f"{n}: a gradient with checkpointing on or off only"
        if grad is not None:
            # a parameter reached by several paths (MAXIM's input convs) sums its gradient in another order when
            # the backward recomputes: rounding-level differences, so the tolerance scales with the gradient
            atol = max(1e-6, 1e-4 * grad.abs().max().item())
            torch.testing.assert_close(checkpointed[n], grad, rtol=1e-4, atol=atol, msg=lambda m, n=n: f"{n}: {m}")


def check_state_dict_round_trip(name: str) -> None:
    """A state dict saved and loaded back with weights_only=True reproduces the outputs exactly."""
    size = input_size(name)
    torch.manual_seed(0)
    source = timm.create_model(name).eval()
    torch.manual_seed(1)
    target = timm.create_model(name).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(source(x), target(x), rtol=0, atol=0)


def check_rejects_unknown_kwargs(name: str) -> None:
    """A misspelt constructor argument is an error, not silently ignored."""
    try:
        timm.create_model(name, device="meta", not_an_argument=1)
    except TypeError:
        return
    raise AssertionError(f"{name} accepted an unknown keyword argument")


# Contracts of timm's own tests/test_models.py (test_model_default_cfgs*, test_model_forward_features,
# test_model_*_fx, test_model_forward_torchscript), checked here without timm's test file.

# The MSViT tokenizer is data-dependent Python that TorchScript cannot compile (tests/timm_suite.py: EXCLUDED).
TORCHSCRIPT_EXCLUDED = ("msvit_",)


def _unpooled_grid(name: str) -> tuple[int, int] | None:
    """The (H, W) of forward_features at the cfg's input size (its pool_size), or None for token sequences."""
    pool_size = timm.models.get_pretrained_cfg(name).pool_size
    return tuple(pool_size) if pool_size else None


def check_forward_features_layout(name: str) -> None:
    """forward_features is unpooled in timm's layout: NCHW (or NHWC where `output_fmt` says so) with the cfg's
    pool_size and num_features; a token model (pool_size None) returns [B, tokens, num_features]; forward_head
    (pre_logits) gives head_hidden_size and global_pool='' keeps the map. Shapes only: runs on the meta device."""
    if is_restoration(name):
        return
    cfg = timm.models.get_pretrained_cfg(name)
    model = timm.create_model(name, device="meta").eval()
    x = torch.randn(1, *cfg.input_size, device="meta")
    features = model.forward_features(x)
    grid = _unpooled_grid(name)
    if grid is None:
        assert features.ndim == 3 and features.shape[-1] == model.num_features, tuple(features.shape)
    else:
        fmt = getattr(model, "output_fmt", "NCHW")
        spatial, channel = timm.layers.get_spatial_dim(fmt), timm.layers.get_channel_dim(fmt)
        assert features.ndim == 4, f"{name}: forward_features gives {tuple(features.shape)}, not a {fmt} map"
        assert tuple(features.shape[i] for i in spatial) == grid, f"{tuple(features.shape)} vs pool_size {grid}"
        assert features.shape[channel] == model.num_features
    assert model.forward_head(features, pre_logits=True).shape == (1, model.head_hidden_size)
    if grid is not None:
        model.reset_classifier(0, "")
        assert model(x).shape == features.shape, "global_pool='' must return the unpooled map"


def check_default_feature_levels(name: str) -> None:
    """features_only returns at least 3 levels by default (timm's ViTs: the last three blocks)."""
    if is_restoration(name):
        return
    model = timm.create_model(name, features_only=True, device="meta")
    assert len(model.feature_info.channels()) >= 3, f"{name}: {len(model.feature_info.channels())} default levels"


def check_reset_classifier_device_dtype(name: str) -> None:
    """reset_classifier builds the new head on the parent's device and dtype, in the parent's train/eval mode."""
    if is_restoration(name):
        return
    model = timm.create_model(name, device="meta").eval()
    model.to(dtype=torch.float64)
    model.reset_classifier(0)
    model.reset_classifier(2)
    params = list(model.get_classifier().parameters())
    assert params and all(p.device.type == "meta" and p.dtype == torch.float64 for p in params)
    assert not any(m.training for m in model.modules())


def _fx_graph(model: torch.nn.Module, train: bool) -> torch.fx.GraphModule:
    """The model's train or eval forward, FX-traced once as timm's feature extraction traces it (timm's notrace
    leaves and functions, torchvision's defaults: its ops wrapped, its op modules kept whole) and pruned of nodes
    the output does not use. Without torchvision's node-naming tracer (create_feature_extractor), which traces each
    graph twice and took 25 s for MAXIM-S2's two graphs where this takes 1.5 s for one."""
    from torchvision.models.feature_extraction import LeafModuleAwareTracer

    torchvision_modules = [
        m for m in vars(torchvision.ops).values() if isinstance(m, type) and issubclass(m, nn.Module)
    ]
    tracer = LeafModuleAwareTracer(
        leaf_modules=[*timm.models.get_notrace_modules(), *torchvision_modules],
        autowrap_modules=(math, torchvision.ops),
        autowrap_functions=timm.models.get_notrace_functions(),
        param_shapes_constant=True,
    )
    graph = tracer.trace(model.train(train))
    traced = torch.fx.GraphModule(tracer.root, graph)
    traced.graph.eliminate_dead_code()
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced.train(train)


def check_fx(name: str) -> None:
    """FX symbolic tracing: the traced eval graph equals the model; the traced train graph backpropagates to every
    parameter (every parameter the output depends on: MAXIM's coarse heads feed only the training loss)."""
    size = input_size(name, 64)
    x = torch.randn(1, 3, *size)
    model = timm.create_model(name)
    traced = _fx_graph(model, train=False)
    with torch.no_grad():
        expected = model.eval()(x)
        output = traced(x)
    torch.testing.assert_close(output, expected, rtol=1e-4, atol=1e-5)
    traced = _fx_graph(model, train=True)
    traced(torch.randn(2, 3, *size)).float().mean().backward()
    missing = [n for n, p in traced.named_parameters() if p.grad is None]
    assert not missing, f"parameters without a gradient through the FX graph: {missing[:5]}"


def check_torchscript(name: str) -> None:
    """torch.jit.script of the model (timm's set_scriptable) gives the eager output."""
    if name.startswith(TORCHSCRIPT_EXCLUDED):
        return
    size = input_size(name, 64)
    with timm.layers.set_layer_config(scriptable=True):
        model = timm.create_model(name).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = model(x)
        scripted = torch.jit.script(model)(x)
    torch.testing.assert_close(scripted, expected, rtol=1e-4, atol=1e-5)


CHECKS = {
    "params_match_facts": check_params_match_facts,
    "forward_backward": check_forward_backward,
    "non_default_size": check_non_default_size,
    "features_only": check_features_only,
    "forward_intermediates": check_forward_intermediates,
    "classifier_api": check_classifier_api,
    "grad_checkpointing": check_grad_checkpointing,
    "state_dict_round_trip": check_state_dict_round_trip,
    "rejects_unknown_kwargs": check_rejects_unknown_kwargs,
    "forward_features_layout": check_forward_features_layout,
    "default_feature_levels": check_default_feature_levels,
    "reset_classifier_device_dtype": check_reset_classifier_device_dtype,
    "fx": check_fx,
    "torchscript": check_torchscript,
}
