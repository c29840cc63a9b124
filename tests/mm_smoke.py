"""Shrink any det/seg config to a one-iteration CPU run over tiny generated sets in the config's own layout."""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

from visiongates.data.coins_coco import build_coins_set

TINY = dict(num_train=4, num_val=2, image_size=96, min_coins=1, max_coins=3)


def tiny_sets(root: Path) -> dict[str, Path]:
    """The coins set written in each layout: 'coco' (COCO 2017 names), 'ade20k', and our own 'coins'."""
    return {layout: build_coins_set(root / layout, layout=layout, **TINY) for layout in ("coco", "ade20k", "coins")}


def _point_dataset(dataset: dict, roots: dict[str, Path]) -> str:
    """Point one dataset config at the tiny set of its layout; return that layout."""
    kind = dataset["type"]
    if kind == "CocoDataset":
        dataset["data_root"] = f"{roots['coco']}/"
        return "coco"
    if kind == "ADE20KDataset":
        dataset["data_root"] = f"{roots['ade20k']}/ADEChallengeData2016"
        return "ade20k"
    if kind.startswith("Coins"):
        dataset["data_root"] = f"{roots['coins']}/"
        dataset["coins_spec"] = dict(TINY)
        return "coins"
    raise ValueError(f"no tiny set for dataset type {kind}")


def _shrink_pipeline(pipeline: list[dict], size: int) -> None:
    for step in pipeline:
        if step["type"] in ("Resize", "RandomResize"):
            step["scale"] = (size, size)
        elif step["type"] == "RandomCrop":
            step["crop_size"] = (size, size)


def shrink_config(cfg: Config, roots: dict[str, Path], work_dir: Path, size: int = 64) -> Config:
    """One training iteration (2 images), one validation pass (1 image), no checkpoint, tiny images."""
    cfg.work_dir = str(work_dir)
    layout = None
    for key, count in (("train_dataloader", 2), ("val_dataloader", 1), ("test_dataloader", 1)):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False, batch_size=count)
        loader.dataset["indices"] = count
        layout = _point_dataset(loader.dataset, roots)
        _shrink_pipeline(loader.dataset.pipeline, size)
    for key in ("val_evaluator", "test_evaluator"):
        evaluator = cfg[key]
        if evaluator.get("ann_file"):
            name = "instances_val2017.json" if layout == "coco" else "instances_val.json"
            evaluator["ann_file"] = str(roots[layout] / "annotations" / name)
    if cfg.model.data_preprocessor.get("size"):
        cfg.model.data_preprocessor["size"] = (size, size)
    loop = cfg.train_cfg
    if loop["type"] == "EpochBasedTrainLoop":
        loop.update(max_epochs=1, val_interval=1)
    else:
        loop.update(max_iters=1, val_interval=1)
    cfg.default_hooks["checkpoint"] = None
    cfg.default_hooks["logger"]["interval"] = 1
    return cfg


def tiny_coins_options(num_train: int = 8, num_val: int = 4, image_size: int = 96) -> dict:
    """--cfg-options that make a coins config (det or seg) run on a tiny set in the main process."""
    spec = dict(num_train=num_train, num_val=num_val, image_size=image_size, min_coins=1, max_coins=4)
    options: dict = {}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        options[f"{loader}.dataset.coins_spec"] = spec
        options[f"{loader}.num_workers"] = 0
        options[f"{loader}.persistent_workers"] = False
    return options


def as_cli_options(options: dict) -> list[str]:
    """The same overrides as `--cfg-options` command-line words."""
    words = []
    for key, value in options.items():
        if isinstance(value, dict):  # mmengine's DictAction parses no dict(...): one dotted key per field
            words.extend(as_cli_options({f"{key}.{k}": v for k, v in value.items()}))
        else:
            words.append(f"{key}={value}")
    return words
