"""Checkpoint contents, shared by every model file, the trainer, the converter and the mm adapter: one way to unwrap
a checkpoint (on timm's `clean_state_dict`), one strict-load error report and the hint for weights fetched by hand.

File I/O (atomic writes, safe loads) lives in `visiongates.engine.checkpoint`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from timm.models import clean_state_dict, resolve_pretrained_cfg

from visiongates.errors import CheckpointError

__all__ = ["check_state_dict", "clean_checkpoint", "require_weight_source"]

# where training scripts keep the weights: ours and timm's ('model', 'state_dict'), DeiT ('model'), the CBAM
# repository ('state_dict'), other trainers ('model_state_dict')
_WRAPPERS = ("model", "state_dict", "model_state_dict")


def clean_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The weights inside a loaded checkpoint: unwrap {'model' | 'state_dict' | 'model_state_dict': ...}, then strip
    DataParallel / torch.compile prefixes (`module.`, `_orig_mod.`) with timm's `clean_state_dict`."""
    for key in _WRAPPERS:
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    return clean_state_dict(dict(checkpoint))


def check_state_dict(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint", name: str | None = None
) -> None:
    """Raise one readable `CheckpointError` unless `state_dict` holds exactly `model`'s keys with its shapes.

    `source` names the checkpoint in the message, `name` the model (its class name by default).
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if not (missing or unexpected or mismatched):
        return
    details = []
    if missing:
        details.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        details.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        k = mismatched[0]
        details.append(
            f"{len(mismatched)} with other shapes (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})"
        )
    raise CheckpointError(
        f"{source} does not fit {name or type(model).__name__}: {'; '.join(details)}. "
        "Was it saved for another model or number of classes?"
    )


def require_weight_source(variant: str, kwargs: Mapping[str, Any]) -> None:
    """Before `build_model_with_cfg(..., pretrained=True)`: if the chosen pretrained tag has no URL, hub id or file
    but its cfg `notes` say how to get the weights by hand, raise with those notes (timm's own error gives none)."""
    cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
    if not cfg.has_weights and cfg.notes:
        raise RuntimeError(f"{variant}.{cfg.tag}: no weights can be fetched automatically; {' '.join(cfg.notes)}")
