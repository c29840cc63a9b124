"""Checks that turn mid-run crashes of the mm tools into one line before the first iteration, and clean stops.

- `DataCheckHook` (before_run): every image and segmentation map that a dataset lists exists; a COCO file's
  annotations name only categories that the file defines (`unknown_categories='error'` stops, `'drop'` trains
  without them and says how many); every class named in the config is a category of the file.
- `check_feature_channels`: the backbone's `out_channels` against what the neck (or, without one, the heads) expects.
- `StopOnSignalHook` + `catch_sigterm`: SIGTERM lets the current iteration finish, then stops the run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from visiongates.errors import DataError, VisionGatesError

from .registry import register_hook

log = logging.getLogger(__name__)

UNKNOWN_CATEGORY_CHOICES = ("error", "drop")


def _leaf_datasets(dataset: Any) -> Iterator[Any]:
    """The datasets inside wrappers (ConcatDataset, RepeatDataset, ClassBalancedDataset)."""
    if hasattr(dataset, "datasets"):
        for inner in dataset.datasets:
            yield from _leaf_datasets(inner)
    elif hasattr(dataset, "dataset") and not hasattr(dataset, "get_data_info"):
        yield from _leaf_datasets(dataset.dataset)
    else:
        yield dataset


def _describe(dataset: Any) -> str:
    ann_file = getattr(dataset, "ann_file", "") or ""
    return f"'{ann_file}'" if ann_file else f"the {type(dataset).__name__} under '{getattr(dataset, 'data_root', '')}'"


def missing_files(dataset: Any) -> tuple[list[str], int]:
    """(listed image / segmentation-map paths that do not exist, number of samples checked)."""
    if not getattr(dataset, "_fully_initialized", True):
        dataset.full_init()
    missing = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        for key in ("img_path", "seg_map_path"):
            path = info.get(key)
            if isinstance(path, str) and "://" not in path and not os.path.exists(path):
                missing.append(path)
    return missing, len(dataset)


def category_problems(dataset: Any) -> tuple[list[str], dict[int, int], int]:
    """For a COCO-format dataset: (classes the file does not define, {unknown category id: annotations}, annotations
    of defined categories that the config leaves out)."""
    ann_file = getattr(dataset, "ann_file", "") or ""
    if not hasattr(dataset, "cat_ids") or not ann_file.endswith(".json") or not os.path.isfile(ann_file):
        return [], {}, 0
    with open(ann_file) as f:
        coco = json.load(f)
    defined = {c["id"]: c.get("name") for c in coco.get("categories", [])}
    absent = [c for c in dataset.metainfo.get("classes", ()) if c not in set(defined.values())]
    unknown: dict[int, int] = {}
    left_out = 0
    chosen = set(dataset.cat_ids)
    for ann in coco.get("annotations", []):
        cat = ann.get("category_id")
        if cat not in defined:
            unknown[cat] = unknown.get(cat, 0) + 1
        elif cat not in chosen:
            left_out += 1
    return absent, unknown, left_out


def check_dataset(dataset: Any, split: str, unknown_categories: str = "error") -> str:
    """Raise DataError on missing files, classes the annotation file lacks, or (unless 'drop') annotations with
    unknown category ids; return a one-line summary of what was checked."""
    where = _describe(dataset)
    missing, total = missing_files(dataset)
    if missing:
        names = ", ".join(Path(p).name for p in missing[:3])
        raise DataError(
            f"{split}: {len(missing)} file(s) that {where} lists are missing (e.g. {names}; first: "
            f"'{missing[0]}'); fix the file names or data_root / data_prefix"
        )
    absent, unknown, left_out = category_problems(dataset)
    if absent:
        raise DataError(
            f"{split}: class(es) {absent} named in the config are not categories of {where}; "
            "their labels would shift silently"
        )
    notes = []
    if unknown:
        count, ids = sum(unknown.values()), sorted(unknown, key=str)
        if unknown_categories == "error":
            raise DataError(
                f"{split}: {count} annotation(s) in {where} have category ids {ids[:5]} that its "
                "categories list does not define; pass --unknown-categories drop to train without them"
            )
        notes.append(f"{count} annotation(s) with unknown category ids {ids[:5]} dropped")
    if left_out:
        notes.append(f"{left_out} annotation(s) of categories outside the config's classes left out")
    return f"{split}: {total} samples, every listed file present" + "".join(f"; {n}" for n in notes)


@register_hook()
class DataCheckHook(Hook):
    """Before the first iteration, check the train / val / test datasets the runner has built (see module doc)."""

    priority = "VERY_HIGH"

    def __init__(self, unknown_categories: str = "error") -> None:
        if unknown_categories not in UNKNOWN_CATEGORY_CHOICES:
            raise VisionGatesError(
                f"unknown_categories must be one of {UNKNOWN_CATEGORY_CHOICES}, not '{unknown_categories}'"
            )
        self.unknown_categories = unknown_categories

    def before_run(self, runner: Any) -> None:
        from mmengine.runner import BaseLoop

        for split in ("train", "val", "test"):
            loop = getattr(runner, f"_{split}_loop", None)
            if not isinstance(loop, BaseLoop):  # not built for this run (still a config dict) or absent
                continue
            for dataset in _leaf_datasets(loop.dataloader.dataset):
                runner.logger.info("data check: " + check_dataset(dataset, split, self.unknown_categories))


def add_tool_hooks(cfg: Any, unknown_categories: str | None) -> None:
    """Add a DataCheckHook (or set the option of the one the config has) and a StopOnSignalHook to
    `cfg.custom_hooks`."""
    hooks = [dict(h) for h in (cfg.get("custom_hooks") or [])]
    ours = [h for h in hooks if h.get("type") == "DataCheckHook"]
    if not ours:
        hooks.append(dict(type="DataCheckHook", unknown_categories=unknown_categories or "error"))
    elif unknown_categories is not None:
        ours[0]["unknown_categories"] = unknown_categories
    if not any(h.get("type") == "StopOnSignalHook" for h in hooks):
        hooks.append(dict(type="StopOnSignalHook"))
    cfg.custom_hooks = hooks


# ------------------------------------------------------------------------------------------------ model checks
def _as_list(value: int | Sequence[int]) -> list[int]:
    return [value] if isinstance(value, int) else list(value)


def _selected(channels: list[int], index: int | Sequence[int], who: str) -> list[int]:
    indices = _as_list(index)
    bad = [i for i in indices if not -len(channels) <= i < len(channels)]
    if bad:
        raise VisionGatesError(
            f"{who} reads in_index {index}, but the backbone returns only {len(channels)} levels (channels {channels})"
        )
    return [channels[i] for i in indices]


def check_feature_channels(model: Any) -> None:
    """Raise one line when the neck (or, without a neck, a head) expects other channels than the backbone gives."""
    from mmengine.model import is_model_wrapper

    from .backbone import VGBackbone

    model = model.module if is_model_wrapper(model) else model
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, VGBackbone):
        return
    channels = list(backbone.out_channels)
    gives = (
        f"backbone {backbone.model_name} with out_indices {backbone.out_indices} gives {len(channels)} "
        f"level(s) with channels {channels}"
    )
    neck = getattr(model, "neck", None)
    if neck is not None:
        necks = list(neck) if hasattr(neck, "__iter__") and not hasattr(neck, "in_channels") else [neck]
        first = necks[0]
        expected = getattr(first, "in_channels", None)
        if expected is None:
            return
        name = type(first).__name__
        if isinstance(expected, int):
            got = _selected(channels, getattr(first, "in_index", -1), f"neck {name}")
            ok, expected_text = got == [expected], f"in_channels {expected}"
        else:
            ok, expected_text = list(expected) == channels, f"in_channels {list(expected)}"
        if not ok:
            raise VisionGatesError(
                f"{gives}, but the neck {name} expects {expected_text}; make "
                "model.neck.in_channels match, or choose model.backbone.out_indices that give it"
            )
        return
    heads = []
    for attr in ("decode_head", "auxiliary_head"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        heads += [(f"{attr}.{i}", h) for i, h in enumerate(head)] if hasattr(head, "__len__") else [(attr, head)]
    for attr, head in heads:
        if not hasattr(head, "in_index") or not hasattr(head, "in_channels"):
            continue
        got = _selected(channels, head.in_index, f"model.{attr} ({type(head).__name__})")
        transform = getattr(head, "input_transform", None)
        want = _as_list(head.in_channels)
        if transform == "resize_concat":
            got = [sum(got)]
        if got != want:
            raise VisionGatesError(
                f"{gives}, but model.{attr} ({type(head).__name__}) reads in_index "
                f"{head.in_index} and expects in_channels {head.in_channels} (those levels have "
                f"{got}); make its in_channels match the backbone"
            )


# ------------------------------------------------------------------------------------------------------- stops
class _StopFlag:
    signum: int | None = None


STOP = _StopFlag()


class Stopped(Exception):
    """Raised by StopOnSignalHook after the iteration in which SIGTERM arrived."""


@register_hook()
class StopOnSignalHook(Hook):
    """After each iteration, stop the run if SIGTERM arrived (`catch_sigterm` sets the flag); runs after the
    checkpoint hook, so an interval's checkpoint due at this iteration is written first."""

    priority = "LOWEST"

    def _check(self, *args: Any, **kwargs: Any) -> None:
        if STOP.signum is not None:
            raise Stopped()

    after_train_iter = after_val_iter = after_test_iter = _check


@contextmanager
def catch_sigterm() -> Iterator[_StopFlag]:
    """Route SIGTERM to the stop flag (main thread only) for the duration of a run."""
    STOP.signum = None
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return

    def handler(signum: int, frame: Any) -> None:
        STOP.signum = signum

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield STOP
    finally:
        signal.signal(signal.SIGTERM, previous)


def latest_checkpoint(work_dir: str | os.PathLike) -> str | None:
    """The checkpoint mmengine last wrote into work_dir (its `last_checkpoint` record), if that file exists."""
    record = Path(work_dir) / "last_checkpoint"
    if not record.is_file():
        return None
    path = record.read_text().strip()
    return path if path and Path(path).is_file() else None


__all__ = [
    "DataCheckHook",
    "StopOnSignalHook",
    "add_tool_hooks",
    "catch_sigterm",
    "check_dataset",
    "check_feature_channels",
    "latest_checkpoint",
]
