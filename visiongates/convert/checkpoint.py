"""Convert a released checkpoint (in its publisher's layout) to a visiongates state dict, and say what went where.

The conversion is timm's own pretrained path: `timm.create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=SRC))`, i.e. timm's file loader, the family's `checkpoint_filter_fn` and a strict
load (a Flax `.npz` goes through the model's `load_pretrained`). The result is the model's state dict, written as
safetensors; loading it needs no filter.

The report comes from a probe: the family's filter is run once more, on a model on the meta device and a copy of the
source in which every tensor is filled with its own index. Reading the index back from each produced tensor says
which source tensor it came from, whatever the filter did to it on the way (rename, transpose, flip, resample,
dtype). Source tensors that reach no model tensor were left out (e.g. DeiT's distillation token); model tensors
that hold no probe index were not in the source (e.g. MSViT's gate, kept from the model's initialisation).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from timm.models import load_state_dict, split_model_name_tag

from visiongates.checkpoint import check_state_dict
from visiongates.engine.checkpoint import check_checkpoint_path
from visiongates.errors import CheckpointError
from visiongates.models import check_model_name

__all__ = ["ConversionReport", "convert_checkpoint", "probe_mapping", "read_source"]

_PROBE_BASE = 1000  # probe values are _PROBE_BASE + source index: exact in float32, unlike any initialisation


@dataclass
class ConversionReport:
    """What a conversion did: `mapped` (source key, model key) pairs, `combined` model keys built from several
    source tensors, source keys `left_out`, model keys `not_in_source` (kept from the model's initialisation)."""

    model: str
    source: str
    num_source: int
    mapped: list[tuple[str, str]] = field(default_factory=list)
    combined: dict[str, list[str]] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    not_in_source: list[str] = field(default_factory=list)

    def lines(self, verbose: bool = False) -> list[str]:
        """The report as printable lines; `verbose` lists every mapped pair, otherwise only a few renames."""
        renamed = [(s, m) for s, m in self.mapped if s != m]
        out = [
            f"{self.source}: {self.num_source} tensors -> {self.model}: "
            f"{len(self.mapped) + len(self.combined)} tensors from the source",
            f"mapped: {len(self.mapped)} ({len(renamed)} renamed, {len(self.mapped) - len(renamed)} same name)",
        ]
        shown = self.mapped if verbose else renamed[:5]
        out += [f"  {s} -> {m}" for s, m in shown]
        if not verbose and len(renamed) > len(shown):
            out.append(f"  ... {len(renamed) - len(shown)} more renames (--verbose lists every pair)")
        if self.combined:
            out.append(f"combined from several source tensors: {len(self.combined)}")
            out += [f"  {', '.join(src)} -> {m}" for m, src in self.combined.items()]
        out.append(f"left out of the source: {len(self.left_out)}")
        out += [f"  {k}" for k in self.left_out]
        out.append(f"not in the source (kept from the model's initialisation): {len(self.not_in_source)}")
        out += [f"  {k}" for k in self.not_in_source]
        return out


def read_source(path: str | Path) -> dict[str, Any]:
    """The tensors of a checkpoint file as timm's pretrained loader reads them: a Flax `.npz` as its flattened tree
    (numpy arrays), anything else with timm's `load_state_dict` (safetensors, or torch with weights_only)."""
    path = check_checkpoint_path(path)
    try:
        if path.suffix == ".npz":
            from visiongates.models.maxim_flax import load_flax_npz

            return load_flax_npz(path)
        return load_state_dict(str(path))
    except Exception as exc:  # noqa: BLE001  any reader failure is a bad file for the user
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({reason[:200]})") from None


def _filter_fn(name: str):
    module = sys.modules[timm.models.model_entrypoint(split_model_name_tag(name)[0]).__module__]
    return getattr(module, "checkpoint_filter_fn", None)


def _probe(shape: tuple[int, ...], index: int, like: Any) -> Any:
    value = _PROBE_BASE + index
    if isinstance(like, np.ndarray):
        return np.broadcast_to(np.float32(value), shape)
    return torch.full((), float(value)).expand(shape)


def probe_mapping(name: str, source: dict[str, Any], source_name: str = "source") -> ConversionReport:
    """Run `name`'s checkpoint filter on a probe copy of `source` (see the module docstring) against a meta-device
    model; raise `CheckpointError` unless the result fits the model exactly."""
    model = timm.create_model(name, device="meta")
    keys = list(source)
    probe = {k: _probe(tuple(source[k].shape), i, source[k]) for i, k in enumerate(keys)}
    filter_fn = _filter_fn(name)
    try:
        produced = filter_fn(probe, model) if filter_fn is not None else probe
    except (KeyError, ValueError, RuntimeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{source_name} does not convert to {name} ({reason[:300]})") from None
    check_state_dict(model, produced, source=source_name, name=name)
    report = ConversionReport(model=name, source=source_name, num_source=len(keys))
    used: set[int] = set()
    for model_key, tensor in produced.items():
        tensor = torch.as_tensor(tensor) if not isinstance(tensor, torch.Tensor) else tensor
        if tensor.is_meta or tensor.numel() == 0:
            report.not_in_source.append(model_key)
            continue
        values = tensor.detach().float()
        rounded = values.round()
        indices = (torch.unique(rounded) - _PROBE_BASE).long().tolist()
        if (values - rounded).abs().max() > 1e-2 or not all(0 <= i < len(keys) for i in indices):
            report.not_in_source.append(model_key)
        elif len(indices) == 1:
            report.mapped.append((keys[indices[0]], model_key))
        else:
            report.combined[model_key] = [keys[i] for i in indices]
        used.update(i for i in indices if 0 <= i < len(keys))
    report.left_out = [k for i, k in enumerate(keys) if i not in used]
    return report


def convert_checkpoint(src: str | Path, name: str, output: str | Path | None = None) -> ConversionReport:
    """Convert `src` (a checkpoint in its publisher's layout, or ours) for model `name` through timm's pretrained
    loader; write the model's state dict as safetensors to `output` if given. Returns the mapping report."""
    from safetensors.torch import save_file

    check_model_name(split_model_name_tag(name)[0])
    src = Path(src)
    report = probe_mapping(name, read_source(src), source_name=f"'{src}'")
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(src)))
    except (KeyError, ValueError, RuntimeError) as exc:  # the probe passed, so this is a bad tensor, not a bad key
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"'{src}' does not load into {name} ({reason[:300]})") from None
    if output is not None:
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(output), metadata={"model": name, "source": src.name})
    return report
