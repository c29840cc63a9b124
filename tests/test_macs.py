"""GMACs: every recorded figure is what visiongates.flops counts now, and the count is the same on CPU as on the
meta device (torch's FlopCounterMode alone misses the CPU attention kernel and torchvision's deformable conv)."""

from __future__ import annotations

import math

import pytest
import timm
import torch

import visiongates  # noqa: F401  registers the models
from visiongates.flops import count_macs, count_model_gmacs
from visiongates.models import list_models, model_facts

# model_facts records GMACs rounded to 3 decimals (>= 1 GMAC everywhere), so a recount must agree to 0.1%.
GMACS_REL_TOL = 1e-3
# MSViT's compute depends on the image (its gate): it records none, and tools/analysis/benchmark_msvit.py counts it
# per image.
INPUT_DEPENDENT = {"msvit_tiny_patch16_224", "msvit_small_patch16_224"}


@pytest.mark.parametrize("name", list_models())
def test_recorded_gmacs_match_a_recount(name):
    """Every registered model, counted on the meta device (no weights, no memory) at its default input size."""
    facts = model_facts(name)
    assert facts is not None, f"{name} records no model_facts"
    if name in INPUT_DEPENDENT:
        assert facts.gmacs is None
        return
    gmacs = count_model_gmacs(name)
    assert math.isclose(gmacs, facts.gmacs, rel_tol=GMACS_REL_TOL), (name, gmacs, facts.gmacs)


@pytest.mark.parametrize(
    ("name", "kwargs", "size"),
    [
        ("deit_tiny_patch16_224", dict(img_size=96, depth=2), 96),  # SDPA: the CPU flash kernel
        ("gpsa_convit_tiny", dict(depth=3, local_up_to_layer=2), 96),  # GPSA blocks, then plain SDPA attention
        ("das_resnet18", {}, 64),  # torchvision's deformable conv
    ],
)
def test_cpu_count_equals_meta_count(name, kwargs, size):
    torch.manual_seed(0)
    cpu = count_macs(timm.create_model(name, **kwargs).eval(), torch.randn(1, 3, size, size))
    meta = count_macs(
        timm.create_model(name, device="meta", **kwargs).eval(), torch.empty(1, 3, size, size, device="meta")
    )
    assert cpu == meta, (cpu, meta)


def test_deit_tiny_counts_its_attention():
    """DeiT-Ti at 224: 1.254 GMACs with attention (timm's model card: 1.3); FlopCounterMode alone on CPU: 1.075."""
    model, x = timm.create_model("deit_tiny_patch16_224").eval(), torch.randn(1, 3, 224, 224)
    assert round(count_macs(model, x) / 1e9, 3) == 1.254
    assert round(count_macs(model, x, extra=False) / 1e9, 3) == 1.075


def _stride_on_1x1(model: torch.nn.Module) -> torch.nn.Module:
    for block in model.modules():
        if hasattr(block, "conv3") and block.conv2.stride == (2, 2):
            block.conv1.stride, block.conv2.stride = (2, 2), (1, 1)
    return model


@pytest.mark.parametrize(("name", "paper"), [("cbam_resnet50", 3.864), ("cbam_resnet101", 7.581)])
def test_cbam_paper_gmacs_are_the_stride_on_1x1_layout(name, paper):
    """The CBAM paper's Tab. 4 figures are this network with each downsampling stride on the bottleneck's 1x1 conv;
    the official code (and this model) stride the 3x3, which costs more."""
    x = torch.empty(1, 3, 224, 224, device="meta")
    model = timm.create_model(name, device="meta").eval()
    assert count_macs(model, x) / 1e9 > paper + 0.2
    assert round(count_macs(_stride_on_1x1(model), x) / 1e9, 3) == paper


def test_msvit_macs_by_fine_regions():
    """MSViT's operating points (docs/benchmarks.md): tokens 1 + 49 + 3 n, MACs falling with n, all fine a little
    above the plain ViT (the gate MLP), 16 of 49 regions fine about 0.47x the ViT."""
    from visiongates.benchmarks.msvit import macs_by_fine_regions
    from visiongates.models.msvit import to_plain_vit

    torch.manual_seed(0)
    model = timm.create_model("msvit_tiny_patch16_224").eval()
    vit = count_macs(to_plain_vit(model).eval(), torch.zeros(1, 3, 224, 224)) / 1e9
    rows = macs_by_fine_regions(model, 224, [49, 16, 0])
    assert [row["tokens"] for row in rows] == [197, 98, 50]
    assert vit < rows[0]["gmacs"] < 1.01 * vit and rows[0]["gmacs"] > rows[1]["gmacs"] > rows[2]["gmacs"]
    assert round(rows[1]["gmacs"] / vit, 2) == 0.47
