"""Checkpoint files: atomic writes, safe loads (weights_only=True) and errors that say what is wrong."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from visiongates.checkpoint import check_state_dict, clean_checkpoint
from visiongates.errors import CheckpointError


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically: a temporary file in the same folder, then a rename.

    A crash mid-write leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (`.<name>.<random>.tmp`) that a process killed mid-write by `save_checkpoint`
    left in `folder`; returns them. Run at the start of a run, before anything writes there."""
    stale = sorted(p for p in Path(folder).glob(".*.pth.*.tmp") if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_checkpoint_path(path: str | os.PathLike) -> Path:
    """`path` as a Path if it is a file; else a CheckpointError saying it does not exist or is a folder."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pth"))
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise CheckpointError(f"checkpoint '{path}' is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True` (no code runs from the file); errors name the file and problem."""
    path = check_checkpoint_path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, OSError, ValueError) as exc:
        text = str(exc)
        reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        with open(path, "rb") as f:
            head = f.read(2)
        torch_file = head == b"PK" or head[:1] == b"\x80"  # the zip archive torch.save writes, or a pickle
        if not torch_file and path.suffix.lower() == ".onnx":
            raise CheckpointError(
                f"'{path}' is an ONNX file, not a PyTorch checkpoint (export/ tools read it)"
            ) from None
        if not torch_file:
            raise CheckpointError(
                f"'{path}' is not a PyTorch checkpoint (neither the zip archive torch.save writes "
                "nor a pickle of tensors)"
            ) from None
        if "Weights only load failed" in text or "Unsupported global" in text:
            detail = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), reason)
            raise CheckpointError(
                f"checkpoint '{path}' contains Python objects that a safe load refuses to run ({detail[:200]}); "
                "re-save it as a plain state dict"
            ) from None
        raise CheckpointError(f"checkpoint '{path}' is corrupt or truncated ({reason[:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(state).__name__}, not a dict of tensors")
    return state


def model_state_from(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights inside a checkpoint: ours ('model'), common wrappers ('state_dict') or a bare state dict,
    without DataParallel / torch.compile prefixes."""
    return clean_checkpoint(checkpoint)


def load_model_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights strictly; a checkpoint of another architecture or shape gives one readable error."""
    state_dict = clean_checkpoint(state_dict)
    check_state_dict(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)
