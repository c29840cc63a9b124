"""Fine-tuning and testing mmdet / mmseg configs on mmengine's Runner (what tools/mm/train.py and test.py call).

Adds to a plain `Runner.from_cfg`: a work_dir default, `resume='auto' | path`, CPU data-parallel runs under
torchrun (gloo process group, DDP without device ids: mmengine's own set-up assumes CUDA), and saving visualised
predictions as PNGs when testing. Checkpoints are read by torch's safe loader (see safe_load.py).

Faults become one line before the first iteration (checks.py): a config that does not build, a neck that expects
other channels than the backbone gives, missing image files, unknown category ids. SIGTERM stops after the
current iteration and Ctrl-C at once; both name the checkpoint mmengine last wrote and the command that resumes it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from visiongates.engine.distributed import cleanup_distributed
from visiongates.errors import Interrupted, VisionGatesError

from .checks import Stopped, add_tool_hooks, catch_sigterm, check_feature_channels, latest_checkpoint
from .safe_load import install_safe_checkpoint_loader

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
TASKS = {"mmdet": "detection", "mmseg": "segmentation"}  # a config's registry scope -> what it trains


def config_scope(cfg: Config, config: str | os.PathLike = "the config") -> str:
    """'mmdet' or 'mmseg': the config's `default_scope` (our `_base_/default_runtime.py` files set it), else the scope
    prefix of its model type (`mmdet.RetinaNet`); any other config is one `VisionGatesError`."""
    scope = cfg.get("default_scope")
    if scope is None:
        model_type = str((cfg.get("model") or {}).get("type", ""))
        scope = model_type.split(".")[0] if "." in model_type else None
    if scope not in TASKS:
        raise VisionGatesError(
            f"'{config}' is neither an mmdetection nor an mmsegmentation config: its default_scope is {scope!r}; "
            "set default_scope = 'mmdet' or 'mmseg' (or inherit a config under configs/det or configs/seg)"
        )
    return scope


def load_config(
    config: str | os.PathLike, work_dir: str | None = None, cfg_options: dict[str, Any] | None = None
) -> Config:
    """Read a config (with `_base_` files) that is a detection or segmentation one (`config_scope`); apply
    `key.sub=value` overrides; default work_dir work_dirs/<name>."""
    if not Path(config).is_file():
        raise VisionGatesError(f"config file '{config}' does not exist")
    cfg = Config.fromfile(str(config))
    config_scope(cfg, config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif cfg.get("work_dir") is None:
        cfg.work_dir = str(Path("work_dirs") / Path(config).stem)
    return cfg


def setup_launcher(cfg: Config, launcher: str = "none") -> None:
    """Record the launcher; on CPU under torchrun, join a gloo group and use DDP without device ids."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    cfg.launcher = launcher
    if launcher != "pytorch" or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    print(
        f"CPU data-parallel: process group backend: {dist.get_backend()}, rank {dist.get_rank()} of "
        f"{dist.get_world_size()}",
        flush=True,
    )  # every rank (mmengine's logger prints on rank 0 only)
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    wrapper.setdefault("type", "MMDistributedDataParallel")
    wrapper.setdefault("find_unused_parameters", cfg.get("find_unused_parameters", False))
    wrapper["device_ids"] = None
    cfg.model_wrapper_cfg = wrapper


def set_resume(cfg: Config, resume: str | None) -> None:
    """None: start afresh; 'auto': the latest checkpoint in work_dir (if any); otherwise a checkpoint path."""
    if resume is None:
        return
    cfg.resume = True
    cfg.load_from = None if resume == "auto" else str(resume)


def _config_error(exc: Exception) -> str:
    """The message of an error raised while mmengine builds a config's objects (a KeyError keeps its quotes)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return str(text).split(" Please check whether")[0] or type(exc).__name__


def build_runner(cfg: Config, unknown_categories: str | None = None) -> Runner:
    """`Runner.from_cfg`, with the safe checkpoint loader, the tools' hooks (DataCheckHook, StopOnSignalHook) and a
    visualizer of its own: mmengine keeps one global visualizer per name, so a second runner in the same process
    would otherwise draw into the first one's folder. A config whose objects cannot be built (an invalid
    `out_indices`, an unknown type) or whose neck does not fit the backbone is one `VisionGatesError`."""
    install_safe_checkpoint_loader()
    if isinstance(cfg.get("visualizer"), dict):
        cfg.visualizer["name"] = f"visualizer_{uuid.uuid4().hex[:12]}"
    add_tool_hooks(cfg, unknown_categories)
    try:
        runner = Runner.from_cfg(cfg)
    except (ValueError, KeyError, TypeError) as exc:
        raise VisionGatesError(f"the config does not build: {_config_error(exc)}") from None
    check_feature_channels(runner.model)
    return runner


def _interrupted(runner: Runner, signum: int | None, training: bool) -> Interrupted:
    """The message for a run stopped by SIGTERM (signum 15, after the current iteration) or Ctrl-C (None)."""
    status, name = (143, "SIGTERM") if signum == signal.SIGTERM else (130, "Ctrl-C")
    if not training:
        return Interrupted(f"{name}: testing stopped, no metrics were computed", status)
    loop = runner._train_loop  # not `runner.train_loop`: that would build a loop that is still a config dict
    what = f"{name} at iteration {getattr(loop, 'iter', 0) + 1} (epoch {getattr(loop, 'epoch', 0) + 1})"
    checkpoint = latest_checkpoint(runner.work_dir)
    if checkpoint is None:
        return Interrupted(
            f"{what}: no checkpoint was written yet (default_hooks.checkpoint.interval sets how often)", status
        )
    return Interrupted(
        f"{what}: the latest checkpoint mmengine wrote is {checkpoint}; iterations after it are not saved",
        status,
        resume=("--resume", checkpoint),
    )


def _run(runner: Runner, training: bool) -> Any:
    """runner.train() / runner.test() with SIGTERM and Ctrl-C turned into `Interrupted`."""
    with catch_sigterm() as stop:
        try:
            return runner.train() if training else runner.test()
        except Stopped:
            raise _interrupted(runner, stop.signum, training) from None
        except KeyboardInterrupt:
            raise _interrupted(runner, None, training) from None


def train(
    config: str | os.PathLike,
    work_dir: str | None = None,
    resume: str | None = None,
    launcher: str = "none",
    cfg_options: dict[str, Any] | None = None,
    unknown_categories: str | None = None,
) -> Runner:
    """Train (or resume) a detection / segmentation config; returns the finished Runner.

    unknown_categories: annotations whose category id the COCO file does not define: 'error' (default) stops
    before the first iteration, 'drop' trains without them.
    """
    cfg = load_config(config, work_dir, cfg_options)
    setup_launcher(cfg, launcher)
    set_resume(cfg, resume)
    runner = build_runner(cfg, unknown_categories)
    _run(runner, training=True)
    return runner


VISUALIZERS = {
    "mmdet": ("DetVisualizationHook", "DetLocalVisualizer"),
    "mmseg": ("SegVisualizationHook", "SegLocalVisualizer"),
}  # keyed like TASKS


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Save every test image with its drawn predictions as <show_dir>/vis_data/vis_image/<name>_<i>.png; a config
    without a visualization hook or visualizer gets its scope's (mmdet / mmseg) default ones."""
    hook_type, visualizer_type = VISUALIZERS[config_scope(cfg)]
    if cfg.get("default_hooks") is None:
        cfg.default_hooks = {}
    if cfg.default_hooks.get("visualization") is None:
        cfg.default_hooks["visualization"] = dict(type=hook_type)
    if not isinstance(cfg.get("visualizer"), dict):
        cfg.visualizer = dict(type=visualizer_type, vis_backends=[dict(type="LocalVisBackend")], name="visualizer")
    hook = cfg.default_hooks["visualization"]
    hook.update(draw=True, interval=1)
    hook.pop("test_out_dir", None)  # mmdet would write JPEGs named like the inputs there; we want PNGs
    cfg.visualizer["save_dir"] = str(Path(show_dir).resolve())


def test(
    config: str | os.PathLike,
    checkpoint: str | os.PathLike,
    work_dir: str | None = None,
    show_dir: str | None = None,
    launcher: str = "none",
    cfg_options: dict[str, Any] | None = None,
    unknown_categories: str | None = None,
) -> dict[str, float]:
    """Evaluate a checkpoint on the config's test split; returns the metrics (and draws PNGs into show_dir)."""
    if not Path(checkpoint).is_file():
        raise VisionGatesError(f"checkpoint '{checkpoint}' does not exist")
    cfg = load_config(config, work_dir, cfg_options)
    setup_launcher(cfg, launcher)
    cfg.load_from = str(checkpoint)
    cfg.resume = False
    if show_dir:
        enable_visualization(cfg, show_dir)
    runner = build_runner(cfg, unknown_categories)
    return dict(_run(runner, training=False))


def add_common_args(parser: Any, with_checkpoint: bool = False) -> None:
    """Arguments shared by tools/mm/train.py and tools/mm/test.py."""
    parser.add_argument("config", help="config file (configs/det/... or configs/seg/...)")
    if with_checkpoint:
        parser.add_argument("checkpoint", help="checkpoint file to evaluate")
        parser.add_argument("--show-dir", help="save the test images with drawn predictions as PNGs here")
    else:
        parser.add_argument(
            "--resume",
            nargs="?",
            const="auto",
            default=None,
            help="resume from a checkpoint path, or (no value) the latest in work_dir",
        )
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override config keys, e.g. model.backbone.checkpoint=cls.pth train_cfg.max_epochs=3",
    )
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none", help="'pytorch' under torchrun")
    parser.add_argument(
        "--unknown-categories",
        choices=("error", "drop"),
        default=None,
        help="annotations whose category id the COCO file does not define: stop before training "
        "(error, the default) or train without them (drop)",
    )
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)


@contextlib.contextmanager
def process_group_teardown() -> Iterator[None]:
    """Destroy the process group (if any) before the interpreter exits: left alive, gloo's worker threads outlive
    Python's finalisation and a rank can abort at exit (SIGABRT, "terminate called without an active exception").
    After a run that succeeded, a barrier first, so that no rank tears down while a peer is still communicating;
    after a failure no barrier (a peer may never reach it)."""
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if succeeded and dist.is_available() and dist.is_initialized():
            dist.barrier()
        cleanup_distributed()


def cli(mode: str, argv: Sequence[str] | None = None) -> int:
    """The body of tools/mm/train.py (mode 'train') and tools/mm/test.py ('test'): the config itself says whether it
    is detection or segmentation (`config_scope`). Testing prints the metrics as JSON, the last line of stdout."""
    parser = argparse.ArgumentParser(
        description=f"{mode.capitalize()} an mmdetection or mmsegmentation config with mmengine's Runner "
        "(which one, the config's default_scope says)."
    )
    add_common_args(parser, with_checkpoint=mode == "test")
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    common = dict(
        work_dir=args.work_dir,
        launcher=args.launcher,
        cfg_options=args.cfg_options,
        unknown_categories=args.unknown_categories,
    )
    with process_group_teardown():
        if mode == "train":
            train(args.config, resume=args.resume, **common)
            return 0
        metrics = test(args.config, args.checkpoint, show_dir=args.show_dir, **common)
        if not dist.is_initialized() or dist.get_rank() == 0:
            print(json.dumps({k: float(v) for k, v in metrics.items()}))  # the last line of stdout
        return 0
