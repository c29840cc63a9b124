"""The one training engine under every task: restoration and Attention U-Net segmentation resume exactly (an
epoch-boundary stop or a SIGTERM in the middle of an epoch, then --resume auto, gives the weights, optimizer
state and metrics of an uninterrupted run), as the classifier does (tests/test_train.py, tests/test_faults.py).
Tiny models, crops and step budgets: each run takes a few seconds on one core."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from test_restore import _photos

from visiongates.engine import load_checkpoint
from visiongates.engine.config import load_config
from visiongates.errors import Interrupted, VisionGatesError
from visiongates.tasks import TASKS, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _options(task: str, tmp_path: Path) -> dict:
    """A tiny run of `task`: 2 optimizer steps per epoch, a budget of 6 steps (3 epochs), validation every epoch."""
    common = dict(task=task, steps=6, batch_size=2, eval_every=1, progress=False, seed=3, deterministic=True)
    if task == "restoration":
        photos = _photos(tmp_path / "photos", size=(40, 48))
        return dict(
            common,
            model="maxim_s1",
            # dropout draws from torch's global RNG: the resumed run must restore it to match
            model_kwargs={"features": 8, "zero_init_last": False, "drop_rate": 0.1},
            train_dir=str(photos),
            val_dir=str(photos),
            crop_size=32,
            eval_crop_size=32,
            max_eval_images=2,
            num_samples=1,
            lr=1e-3,
            warmup_steps=2,
            ema=True,
            ema_decay=0.9,
        )
    return dict(
        common,
        encoder_kwargs={"widths": [4, 8, 8, 8, 8]},
        size=32,
        train_length=4,
        val_length=2,
        warmup_steps=2,
    )


def _sigterm_at(monkeypatch, task: str, call: int) -> None:
    """SIGTERM this process during the `call`-th micro-batch's forward pass (counted from 1)."""
    cls = TASKS[task]
    original, calls = cls.training_loss, {"n": 0}

    def wrapped(self, model, batch, extra):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, model, batch, extra)

    monkeypatch.setattr(cls, "training_loss", wrapped)


def _assert_same_run(straight: Path, resumed: Path) -> None:
    a, b = load_checkpoint(straight / "last.pth"), load_checkpoint(resumed / "last.pth")
    assert a["step"] == b["step"] == 6 and a["epoch"] == b["epoch"] == 3 and b["batch"] == 0
    for key in ("model", "ema"):
        if a[key] is not None:
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), (key, name)
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (index, name)
    assert a["evals"] == b["evals"]  # every validation, the step-0 one included (restoration)
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


@pytest.mark.parametrize("task", ["restoration", "segmentation"])
def test_sigterm_mid_epoch_then_resume_is_exact(task, tmp_path, monkeypatch):
    """Straight 6 steps, and a run SIGTERMed in the first micro-batch of epoch 2 (it finishes step 3, writes a
    mid-epoch last.pth and raises Interrupted), resumed with resume=auto: identical weights, EMA, optimizer and
    metrics."""
    options = _options(task, tmp_path)
    straight = train(load_config(**options, output=str(tmp_path / "straight")))
    assert straight["steps_done"] == 6 and len(straight["evals"]) == 3 + (task == "restoration")

    split = tmp_path / "split"
    with monkeypatch.context() as patch:
        _sigterm_at(patch, task, call=3)
        with pytest.raises(Interrupted) as info:
            train(load_config(**options, output=str(split)))
    assert info.value.exit_status == 143 and info.value.resume == ("--resume", "auto")
    where = "(epoch 2 up to batch 1/2, step 3)"
    assert str(info.value) == f"SIGTERM: finished step 3 and wrote {split / 'last.pth'} {where}"
    ckpt = load_checkpoint(split / "last.pth")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"], ckpt["sampler_position"]) == (1, 1, 3, 2)
    assert {"optimizer", "scheduler", "rng", "totals", "evals"} <= set(ckpt)

    resumed = train(load_config(**options, output=str(split), resume="auto"))
    assert resumed["steps_done"] == 6
    _assert_same_run(tmp_path / "straight", split)
    assert resumed["evals"] == straight["evals"]
    best = load_checkpoint(split / "best.pth")
    assert "optimizer" not in best and best["config"]["task"] == task


@pytest.mark.parametrize("task", ["restoration", "segmentation"])
def test_stop_at_an_epoch_then_resume_is_exact(task, tmp_path):
    """stop_after=1 (an epoch boundary), then resume=auto: the same weights and metrics as 6 steps straight;
    metrics.json, summary.json and the log cover the whole run."""
    options = _options(task, tmp_path)
    train(load_config(**options, output=str(tmp_path / "straight")))
    train(load_config(**options, output=str(tmp_path / "split"), stop_after=1))
    assert load_checkpoint(tmp_path / "split" / "last.pth")["step"] == 2
    train(load_config(**options, output=str(tmp_path / "split"), resume="auto"))
    _assert_same_run(tmp_path / "straight", tmp_path / "split")
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert metrics["config"]["task"] == task and [e["step"] for e in metrics["evals"]][-3:] == [2, 4, 6]
    assert [row["epoch"] for row in json.loads((tmp_path / "split" / "log.json").read_text())] == [1, 2, 3]
    assert (tmp_path / "split" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mid_epoch_resume_refuses_another_batch_size(tmp_path, monkeypatch):
    options = _options("segmentation", tmp_path)
    with monkeypatch.context() as patch:
        _sigterm_at(patch, "segmentation", call=1)
        with pytest.raises(Interrupted):
            train(load_config(**options, output=str(tmp_path / "run")))
    changed = {**options, "batch_size": 1}
    with pytest.raises(VisionGatesError, match="needs the same batch_size as the interrupted run"):
        train(load_config(**changed, output=str(tmp_path / "run"), resume="auto"))


def test_one_schema_for_every_task(tmp_path):
    """Every task reads the common options and its own section; another task's option is one clear error."""
    cfg = load_config(task="restoration")
    assert (cfg.model, cfg.opt, cfg.steps, cfg.lr) == ("maxim_s1", "adam", 300, 2e-4)
    assert "crop_size" in cfg.to_dict() and "img_size" not in cfg.to_dict() and "gate" not in cfg.to_dict()
    assert load_config(**cfg.to_dict()).to_dict() == cfg.to_dict()  # what a checkpoint records loads back
    with pytest.raises(VisionGatesError, match="option img_size belongs to task classification, not restoration"):
        load_config(task="restoration", img_size=64)
    with pytest.raises(VisionGatesError, match="option task must be one of classification, restoration, segmentation"):
        load_config(task="detection")
    repo = Path(__file__).resolve().parents[1]
    for path in sorted((repo / "configs").glob("*/*.yaml")):
        assert load_config(config_file=path).task in TASKS, path


def _run_train_py(*args: str, monkeypatch, capsys) -> tuple[int, str, str]:
    """tools/train.py in this process: (exit status, stdout, stderr)."""
    import runpy
    import sys

    tool = Path(__file__).resolve().parents[1] / "tools" / "train.py"
    monkeypatch.setattr(sys, "argv", [str(tool), *map(str, args)])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(tool), run_name="__main__")
    out, err = capsys.readouterr()
    return (info.value.code or 0), out, err


def test_train_py_runs_every_task_from_its_config(tmp_path, monkeypatch, capsys):
    """The README's commands for the other tasks: configs/attention_unet/coins.yaml (one run, then a gate
    comparison) and a restoration config with --eval-only --pretrained, shortened."""
    repo = Path(__file__).resolve().parents[1]
    tiny_unet = ["--steps", "1", "--size", "32", "--train-length", "4", "--val-length", "2", "--batch-size", "2"]
    tiny_unet += ["--encoder-kwargs", '{"widths": [4, 8, 8, 8, 8]}', "--progress", "false"]
    config = repo / "configs" / "attention_unet" / "coins.yaml"
    code, out, err = _run_train_py(
        "--config", config, *tiny_unet, "--output", tmp_path / "unet", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 0, err[-3000:]
    assert 0 <= json.loads(out)["dice"] <= 1 and (tmp_path / "unet" / "best.pth").is_file()
    code, out, err = _run_train_py(
        "--config", config, *tiny_unet, "--compare-gates", "grid,none", "--compare-seeds", "0",
        "--output", tmp_path / "cmp", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert "U-Net (plain skips)" in out and (tmp_path / "cmp" / "none_seed0" / "last.pth").is_file()

    photos = _photos(tmp_path / "photos", size=(40, 48))
    code, out, err = _run_train_py(
        "--config", repo / "configs" / "restore" / "maxim_s1_denoise_sigma25.yaml", "--eval-only",
        "--model-kwargs", '{"features": 8, "zero_init_last": true}', "--val-dir", photos, "--eval-crop-size", "32",
        "--output", tmp_path / "eval", "--progress", "false", monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    result = json.loads(out)
    assert result["images"] == 4 and result["gain_db"] == pytest.approx(0.0, abs=1e-6)  # zero-init: output = input
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["evals"][0]["psnr"] == result["psnr"]
    assert len(list((tmp_path / "eval" / "samples" / "step_0").glob("*.png"))) == 4
