"""CBAM- and DAS-ResNets: the official CBAM form and checkpoint layout, DAS's gate at initialisation."""

import re

import pytest
import timm
import torch
import torch.nn.functional as F

import visiongates  # noqa: F401
from visiongates.layers.gates import CbamGate, CbamSpatialGate, DasGate


def _official_layout(state_dict: dict[str, torch.Tensor]) -> dict:
    """Our state dict rewritten in Jongchan/attention-module's layout, as its training script saves it."""
    renames = (
        (r"\.se\.channel\.mlp\.fc1\.", ".cbam.ChannelGate.mlp.1."),
        (r"\.se\.channel\.mlp\.fc2\.", ".cbam.ChannelGate.mlp.3."),
        (r"\.se\.spatial\.conv\.conv\.", ".cbam.SpatialGate.spatial.conv."),
        (r"\.se\.spatial\.conv\.bn\.", ".cbam.SpatialGate.spatial.bn."),
    )
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        out[f"module.{key}"] = value.clone()
    return {"epoch": 90, "arch": "resnet", "best_prec1": 77.6, "state_dict": out}


@pytest.mark.parametrize("name", ["cbam_resnet18", "cbam_resnet50"])
def test_loads_official_cbam_checkpoint_layout(name, tmp_path):
    torch.manual_seed(0)
    source = timm.create_model(name).eval()
    official = _official_layout(source.state_dict())
    assert any(".cbam.ChannelGate.mlp.1.bias" in k for k in official["state_dict"])
    assert any(".cbam.SpatialGate.spatial.bn.running_var" in k for k in official["state_dict"])
    path = tmp_path / "official.pth.tar"
    torch.save(official, path)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


def test_cbam_is_the_official_form():
    model = timm.create_model("cbam_resnet50")
    gates = [m for m in model.modules() if isinstance(m, CbamGate)]
    assert len(gates) == 16  # one per bottleneck block
    gate = gates[0]
    assert gate.channel.mlp.fc1.bias is not None and gate.channel.mlp.fc2.bias is not None
    assert gate.channel.mlp.fc1.out_features == 256 // 16
    assert torch.all(gate.spatial.conv.bn.weight == 0)
    # no zero-init of the residual branch's last BN (the official code initialises every BN weight to 1)
    assert torch.all(model.layer1[0].bn3.weight == 1)


def test_cbam_spatial_pool_order_is_max_then_mean():
    gate = CbamSpatialGate().eval()
    with torch.no_grad():
        gate.conv.conv.weight.zero_()
        gate.conv.conv.weight[0, 0, 3, 3] = 1.0  # the first pooled channel, centre tap only
        gate.conv.bn.weight.fill_(1.0)
    x = torch.randn(2, 8, 5, 5)
    expected = x * torch.sigmoid(gate.conv.bn(x.amax(dim=1, keepdim=True)))
    torch.testing.assert_close(gate(x), expected)


def test_das_gate_starts_as_plain_conv_and_learns_offsets():
    torch.manual_seed(0)
    gate = DasGate(32).eval()
    x = torch.randn(2, 32, 9, 11)
    assert torch.all(gate.deform.offset.weight == 0)
    hidden = F.gelu(gate.norm1(gate.pointwise(gate.depthwise(x))))
    plain = F.conv2d(hidden, gate.deform.weight, gate.deform.bias, padding=1)
    torch.testing.assert_close(gate(x), x * torch.sigmoid(gate.norm2(plain)), rtol=1e-5, atol=1e-5)
    gate.train()
    gate(x).square().mean().backward()
    assert gate.deform.offset.weight.grad.abs().sum() > 0


def test_das_resnet_has_one_gate_per_stage_with_zero_offsets():
    model = timm.create_model("das_resnet50")
    gates = [m for m in model.modules() if isinstance(m, DasGate)]
    assert len(gates) == 4
    assert all(torch.all(g.deform.offset.weight == 0) for g in gates)
    assert [g.depthwise.in_channels for g in gates] == [256, 512, 1024, 2048]


def test_seresnets_come_from_timm():
    from visiongates.models import model_table_rows

    names = {row["name"] for row in model_table_rows()}
    assert {"seresnet50", "cbam_resnet50", "das_resnet50"} <= names
    assert timm.create_model("seresnet50", device="meta").__class__.__module__.startswith("timm.")
