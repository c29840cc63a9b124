"""Convert official MAXIM Flax checkpoints (google-research/maxim) to visiongates' `MAXIM` state dicts.

The released `checkpoint.npz` files hold the flattened Flax tree: '/'-joined paths under 'opt/target/' (official
run_eval.py `get_params`), e.g. 'opt/target/stage_0_encoder_block_0/Conv_0/kernel'. Layouts:
Dense kernel (in, out) -> Linear weight (out, in); Conv kernel (kh, kw, in, out) -> Conv2d weight (out, in, kh, kw);
ConvTranspose kernel (kh, kw, in, out) -> ConvTranspose2d weight (in, out, kh, kw) flipped in both spatial axes
(Flax's ConvTranspose does not flip the kernel, PyTorch's transposed convolution does); LayerNorm scale -> weight.
Module names follow the official code, including Flax's automatic names (Conv_0, Dense_1, UpSampleRatio_17, ...).

Usage:
    state_dict = convert_flax_params(load_flax_npz("checkpoint.npz"), model)
    model.load_state_dict(state_dict)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["load_flax_npz", "flax_module_names", "convert_flax_params"]

_PREFIX = "opt/target/"


def load_flax_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a Flax checkpoint .npz into {flattened path: array}, without the 'opt/target/' prefix."""
    with np.load(path, allow_pickle=False) as data:
        return {k.removeprefix(_PREFIX): data[k] for k in data.files}


def _projected(t: str, f: str, norm: str, inner: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """A layer built as the official LayerNorm `norm`, in_project, the `inner` (ours, Flax) leaves, out_project:
    the gMLP layers, the MAB and the cross-gating weights."""
    yield f"{t}.norm", f"{f}/{norm}"
    yield f"{t}.in_proj", f"{f}/in_project"
    for ours, theirs in inner:
        yield f"{t}.{ours}", f"{f}/{theirs}"
    yield f"{t}.out_proj", f"{f}/out_project"


def _gmlp(t: str, f: str, kind: str) -> Iterator[tuple[str, str]]:
    unit = "GridGatingUnit" if kind == "grid" else "BlockGatingUnit"
    gate = [("gate.norm", f"{unit}/intermediate_layernorm"), ("gate.proj", f"{unit}/Dense_0")]
    yield from _projected(t, f, "LayerNorm", gate)


def _mab(t: str, f: str) -> Iterator[tuple[str, str]]:
    yield from _projected(t, f, "LayerNorm_in", [])
    yield from _gmlp(f"{t}.grid", f"{f}/GridGmlpLayer", "grid")
    yield from _gmlp(f"{t}.block", f"{f}/BlockGmlpLayer", "block")


def _ca(t: str, f: str) -> Iterator[tuple[str, str]]:
    yield from [(f"{t}.fc1", f"{f}/Conv_0"), (f"{t}.fc2", f"{f}/Conv_1")]


def _rcab(t: str, f: str) -> Iterator[tuple[str, str]]:
    yield from [(f"{t}.norm", f"{f}/LayerNorm"), (f"{t}.conv1", f"{f}/conv1"), (f"{t}.conv2", f"{f}/conv2")]
    yield from _ca(f"{t}.ca", f"{f}/channel_attention")


def _rdcab(t: str, f: str) -> Iterator[tuple[str, str]]:
    yield from [
        (f"{t}.norm", f"{f}/LayerNorm"),
        (f"{t}.mlp.fc1", f"{f}/channel_mixing/Dense_0"),
        (f"{t}.mlp.fc2", f"{f}/channel_mixing/Dense_1"),
    ]
    yield from _ca(f"{t}.ca", f"{f}/channel_attention")


def _gating_weights(t: str, f: str) -> Iterator[tuple[str, str]]:
    yield from _projected(t, f, "LayerNorm_in", [("grid_proj", "Dense_0"), ("block_proj", "Dense_1")])


def _cross_gating(t: str, f: str, upsample: bool) -> Iterator[tuple[str, str]]:
    if upsample:
        yield f"{t}.up", f"{f}/ConvTranspose_0"
    yield from [(f"{t}.conv_x", f"{f}/Conv_0"), (f"{t}.conv_y", f"{f}/Conv_1")]
    for s in ("x", "y"):
        yield from [
            (f"{t}.norm_{s}", f"{f}/LayerNorm_{s}"),
            (f"{t}.in_proj_{s}", f"{f}/in_project_{s}"),
            (f"{t}.out_proj_{s}", f"{f}/out_project_{s}"),
        ]
        yield from _gating_weights(f"{t}.gate_{s}", f"{f}/SplitHeadMultiAxisGating_{s}")


def _encoder(t: str, f: str, groups: int, cross_gating: bool, down: bool) -> Iterator[tuple[str, str]]:
    yield f"{t}.conv_in", f"{f}/Conv_0"
    for g in range(groups):
        yield from _mab(f"{t}.blocks.{g}.mab", f"{f}/SplitHeadMultiAxisGmlpLayer_{g}")
        yield from _rcab(f"{t}.blocks.{g}.rcab", f"{f}/channel_attention_block_1{g}")  # sic: no '_' before g
    if cross_gating:
        yield from _cross_gating(f"{t}.cross_gate", f"{f}/cross_gating_block", upsample=False)
    if down:
        yield f"{t}.down", f"{f}/Conv_1"


def _bottleneck(t: str, f: str, groups: int) -> Iterator[tuple[str, str]]:
    yield f"{t}.input_proj", f"{f}/input_proj"
    for g in range(groups):
        yield from _mab(f"{t}.blocks.{g}.mab", f"{f}/SplitHeadMultiAxisGmlpLayer_{g}")
        yield from _rdcab(f"{t}.blocks.{g}.rdcab", f"{f}/channel_attention_block_1_{g}")


def flax_module_names(
    num_stages: int,
    depth: int,
    num_scales: int,
    num_groups: int,
    num_bottleneck_blocks: int,
) -> Iterator[tuple[str, str]]:
    """(our module path, official Flax module path) of every parameterised leaf module of a MAXIM model."""
    upsample_index = 0  # Flax names the unnamed UpSampleRatio modules of MAXIM in call order, across stages
    for s in range(num_stages):
        t, f = f"stages.{s}", f"stage_{s}"
        for i in range(num_scales):
            yield f"{t}.input_convs.{i}", f"{f}_input_conv_{i}"
            if s > 0:
                yield from _cross_gating(f"{t}.input_fuse.{i}", f"{f}_input_fuse_sam_{i}", upsample=False)
        for i in range(depth):
            yield from _encoder(f"{t}.encoders.{i}", f"{f}_encoder_block_{i}", num_groups, s > 0, down=True)
        for b in range(num_bottleneck_blocks):
            yield from _bottleneck(f"{t}.bottleneck.{b}", f"{f}_global_block_{b}", num_groups)
        for fusion in ("skip_fusions", "dec_fusions"):
            for i in reversed(range(depth)):
                for j in range(depth):
                    yield f"{t}.{fusion}.{i}.ups.{j}.conv", f"UpSampleRatio_{upsample_index}/Conv_0"
                    upsample_index += 1
        for i in range(depth):
            yield from _cross_gating(f"{t}.cross_gates.{i}", f"{f}_cross_gating_block_{i}", upsample=True)
            yield f"{t}.decoders.{i}.up", f"{f}_decoder_block_{i}/ConvTranspose_0"
            yield from _encoder(
                f"{t}.decoders.{i}.block",
                f"{f}_decoder_block_{i}/UNetEncoderBlock_0",
                num_groups,
                cross_gating=False,
                down=False,
            )
        for i in range(num_scales):
            if s < num_stages - 1:
                sam = f"{f}_supervised_attention_module_{i}"
                yield from [
                    (f"{t}.heads.{i}.conv_feat", f"{sam}/Conv_0"),
                    (f"{t}.heads.{i}.conv_img", f"{sam}/Conv_1"),
                    (f"{t}.heads.{i}.conv_attn", f"{sam}/Conv_2"),
                ]
            else:
                yield f"{t}.heads.{i}.conv", f"{f}_output_conv_{i}"


def _to_torch(module: nn.Module, name: str, value: np.ndarray) -> tuple[str, torch.Tensor]:
    """(parameter name, tensor) of one Flax leaf of `module` (a Linear, Conv2d, ConvTranspose2d or LayerNorm)."""
    tensor = torch.from_numpy(np.array(value, dtype=np.float32))
    if name == "bias":
        return "bias", tensor
    if isinstance(module, nn.LayerNorm) and name == "scale":
        return "weight", tensor
    if name == "kernel":
        if isinstance(module, nn.Linear):
            return "weight", tensor.t()
        if isinstance(module, nn.ConvTranspose2d):
            return "weight", tensor.flip(0, 1).permute(2, 3, 0, 1)
        if isinstance(module, nn.Conv2d):
            return "weight", tensor.permute(3, 2, 0, 1)
    raise KeyError(f"unexpected Flax parameter {name!r} for {type(module).__name__}")


def convert_flax_params(
    params: Mapping[str, np.ndarray],
    model: nn.Module,
    strict: bool = True,
) -> dict[str, torch.Tensor]:
    """Map a flattened official Flax parameter tree onto `model` (a visiongates MAXIM).

    Keys may carry the 'opt/target/' prefix. With `strict`, every Flax parameter must be consumed and every
    parameter of the model must be produced, with matching shapes; otherwise a ValueError lists the differences.
    """
    flat = {k.removeprefix(_PREFIX): v for k, v in params.items()}
    names = flax_module_names(
        model.num_stages, model.depth, model.num_supervision_scales, model.num_groups, model.num_bottleneck_blocks
    )
    expected = model.state_dict()
    out, used, problems = {}, set(), []
    for ours, theirs in names:
        module = model.get_submodule(ours)
        for leaf in ("kernel", "scale", "bias"):
            key = f"{theirs}/{leaf}"
            if key not in flat:
                continue
            name, tensor = _to_torch(module, leaf, flat[key])
            target = f"{ours}.{name}"
            used.add(key)
            if target not in expected:
                problems.append(f"{key}: the model has no {target}")
            elif tuple(expected[target].shape) != tuple(tensor.shape):
                problems.append(f"{key}: shape {tuple(tensor.shape)} != {target} {tuple(expected[target].shape)}")
            else:
                out[target] = tensor.to(expected[target].dtype)
    missing = sorted(set(expected) - set(out))
    unused = sorted(set(flat) - used)
    if strict and (missing or unused or problems):
        raise ValueError(
            f"Flax checkpoint does not match the model: {len(missing)} missing {missing[:5]}, "
            f"{len(unused)} unused {unused[:5]}, {len(problems)} shape mismatches {problems[:5]}"
        )
    return out
