"""tools/train.py and tools/eval.py end to end: outputs, exact resumption, DDP, the shared photo set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from visiongates.engine import load_checkpoint, load_config
from visiongates.engine.evaluate import evaluate_checkpoint
from visiongates.tasks import train

REPO = Path(__file__).resolve().parents[1]
MAIN_CONFIG = REPO / "configs" / "cls" / "digits_cbam_resnet18.yaml"
FAST = dict(img_size=32, batch_size=16, max_steps_per_epoch=3, workers=0, progress=False, deterministic=True)


def test_train_writes_log_plot_checkpoints_and_eval(tmp_path):
    cfg = load_config(config_file=MAIN_CONFIG, output=str(tmp_path / "run"), epochs=2, **FAST)
    summary = train(cfg)
    run = Path(summary["output"])
    for name in ("log.csv", "log.json", "curves.png", "last.pth", "best.pth", "summary.json"):
        assert (run / name).is_file(), name
    history = json.loads((run / "log.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"train_loss", "val_loss", "val_top1", "val_top5", "skipped", "val_ema_top1"} <= set(history[0])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(run / "last.pth")
    assert ckpt["epoch"] == 2 and ckpt["classes"] == [str(d) for d in range(10)]
    result = evaluate_checkpoint(run / "best.pth", "digits", output=tmp_path / "eval", workers=0)
    assert result["images"] == 360 and 0 <= result["top1"] <= result["top5"] <= 100
    assert len(result["per_class_top1"]) == 10
    assert (tmp_path / "eval" / "confusion.png").is_file()


def test_resume_continues_exactly(tmp_path):
    """2 epochs straight == 1 epoch (the warm-up), stop, resume for 1 more: identical weights, optimizer and EMA."""
    common = dict(epochs=2, mixup=0.2, cutmix=0.2, drop_path=0.1, **FAST)
    straight = train(load_config(config_file=MAIN_CONFIG, output=str(tmp_path / "straight"), **common))
    train(load_config(config_file=MAIN_CONFIG, output=str(tmp_path / "split"), stop_after=1, **common))
    assert load_checkpoint(tmp_path / "split" / "last.pth")["epoch"] == 1
    resumed = train(load_config(config_file=MAIN_CONFIG, output=str(tmp_path / "split"), resume="auto", **common))
    assert straight["epochs_done"] == resumed["epochs_done"] == 2
    a, b = load_checkpoint(tmp_path / "straight" / "last.pth"), load_checkpoint(tmp_path / "split" / "last.pth")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
    for index, state in a["optimizer"]["state"].items():  # AdamW's step count and both moments
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (index, name)
    assert a["scheduler"] == b["scheduler"]
    assert a["history"][-1]["val_loss"] == b["history"][-1]["val_loss"]


def test_torchrun_two_processes_stay_in_sync(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "tools" / "train.py"),
        "--config",
        str(MAIN_CONFIG),
        "--output",
        str(tmp_path / "ddp"),
        "--epochs",
        "1",
        "--max-steps-per-epoch",
        "2",
        "--img-size",
        "32",
        "--batch-size",
        "16",
        "--workers",
        "0",
        "--progress",
        "false",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('"epochs_done"') == 1  # the summary is printed by rank 0 only
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    checksums = summary["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    history = json.loads((tmp_path / "ddp" / "log.json").read_text())
    assert history[0]["train_images"] == 2 * 16  # rank 0's count: 2 steps of batch 16
    assert summary["epochs_done"] == 1


@pytest.mark.slow
def test_hymenoptera_end_to_end(tmp_path, hymenoptera):
    cfg = load_config(
        model="cbam_resnet18",
        data=str(hymenoptera),
        output=str(tmp_path / "hym"),
        epochs=2,
        img_size=96,
        batch_size=16,
        max_steps_per_epoch=4,
        workers=2,
        progress=False,
    )
    summary = train(cfg)
    run = Path(summary["output"])
    for name in ("log.csv", "curves.png", "last.pth", "best.pth"):
        assert (run / name).is_file()
    assert load_checkpoint(run / "best.pth")["classes"] == ["ants", "bees"]
    result = evaluate_checkpoint(run / "best.pth", str(hymenoptera), output=tmp_path / "eval", workers=0)
    assert result["images"] == 153


@pytest.mark.slow
def test_main_job_learns_digits(tmp_path):
    """The README's main job (shortened to 3 epochs of its 6) clears 90% validation top-1."""
    summary = train(load_config(config_file=MAIN_CONFIG, output=str(tmp_path / "main"), epochs=3, progress=False))
    assert summary["best_top1"] >= 90.0
