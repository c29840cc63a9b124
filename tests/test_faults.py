"""Faults and bad input across the tools: each case asserts the message, the exit status and that nothing good was
lost (checkpoints intact and loadable, resumption bit-exact, predictions still made).

The classifier cases run tools/train.py, tools/eval.py and export/export_onnx.py in this process (`run_tool`), so
that a fault can be injected at a chosen step (SIGTERM sent to ourselves, a NaN loss, torch.save failing with
ENOSPC). The mm cases (detection / segmentation) need mmdet and mmseg and skip without them.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visiongates.engine import load_checkpoint
from visiongates.tasks import classification as classification_task

REPO = Path(__file__).resolve().parents[1]
EXACT = ["--mixup", "0.2", "--cutmix", "0.2", "--drop-path", "0.1", "--ema", "true"]  # every RNG consumer


def _tiny_folder(root: Path, classes: int = 3, train: int = 16, val: int = 4, size: int = 40) -> Path:
    """An ImageFolder tree of small PNGs whose classes differ in colour (3 classes: 48 train, 12 val images)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (size, size, 3)) + np.array([80 * c, 40, 200 - 80 * c])
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _tiny_folder(tmp_path_factory.mktemp("faults") / "data")


@pytest.fixture
def tiny(folder) -> list[str]:
    """tools/train.py options of a tiny run: resnet18 at 32 px, 3 steps of batch 8 per epoch, 12 val images."""
    return [
        "--model",
        "resnet18",
        "--data",
        str(folder),
        "--img-size",
        "32",
        "--batch-size",
        "8",
        "--max-steps-per-epoch",
        "3",
        "--workers",
        "0",
        "--progress",
        "false",
        "--deterministic",
        "true",
    ]


def run_tool(tool: str, *args: str, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run a CLI of the repository in this process: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(REPO / tool), *map(str, args)])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / tool), run_name="__main__")
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out, err


@pytest.fixture
def train_cli(monkeypatch, capsys):
    """tools/train.py in this process with this test's monkeypatch and capsys: (status, stdout, stderr)."""
    return functools.partial(run_tool, "tools/train.py", monkeypatch=monkeypatch, capsys=capsys)


def one_error_line(err: str) -> str:
    """The single `error: ...` line of a failed CLI (and no traceback)."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def weights(path: Path, key: str = "model") -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[key]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def call_counter(monkeypatch, at: int, action) -> None:
    """Run `action()` inside the training loop at the `at`-th micro-batch (counted from 1 over the process):
    classification.auxiliary_loss is called once per micro-batch, after the forward pass; its result is returned."""
    original = classification_task.auxiliary_loss
    calls = {"n": 0}

    def wrapped(model):
        calls["n"] += 1
        out = original(model)
        return action(out) if calls["n"] == at else out

    monkeypatch.setattr(classification_task, "auxiliary_loss", wrapped)


def sigterm_self(out):
    os.kill(os.getpid(), signal.SIGTERM)
    return out


def nan_loss(out):
    return torch.tensor(float("nan"))


# ------------------------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--img-size", "0"], "option img_size must be >= 1, got 0"),
        (["--lr", "-0.1"], "option lr must be > 0, got -0.1"),
        (["--epochs", "-1"], "option epochs must be >= 1, got -1"),
        (["--batch-size", "0"], "option batch_size must be >= 1, got 0"),
        (["--on-nonfinite", "ignore"], "option on_nonfinite must be one of stop, skip, got 'ignore'"),
    ],
)
def test_config_values_are_validated_in_one_line(args, message, tiny, tmp_path, train_cli):
    code, _, err = train_cli(*tiny, "--output", tmp_path / "run", *args)
    assert code == 2 and one_error_line(err) == f"error: {message}"
    assert not (tmp_path / "run").exists()  # stopped before anything was created


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("img_size: big", "option img_size must be an integer, got 'big'"),
        ("lr: null", "option lr needs a value (a number), not none"),
    ],
)
def test_yaml_values_of_the_wrong_type_are_one_line(yaml, message, tmp_path, train_cli):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml + "\n")
    code, _, err = train_cli("--config", config)
    assert code == 2 and one_error_line(err) == f"error: {message}"


# ------------------------------------------------------------------------------------------------ SIGTERM, resume
@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_is_bit_exact(tiny, tmp_path, monkeypatch, capsys, train_cli):
    """2 epochs of 2 optimizer steps (2 micro-batches each): straight, and SIGTERM during epoch 2's first micro-batch
    (the step finishes, a mid-epoch last.pth is written, exit 143), then --resume auto: identical weights and EMA."""
    common = [*tiny, *EXACT, "--epochs", "2", "--max-steps-per-epoch", "2", "--accum-steps", "2"]
    code, _, _ = train_cli(*common, "--output", tmp_path / "straight")
    assert code == 0

    with monkeypatch.context() as patch:
        call_counter(patch, at=5, action=sigterm_self)  # epoch 2, batch 1 of 4 (first micro-batch of step 3)
        code, _, err = run_tool(
            "tools/train.py", *common, "--output", tmp_path / "split", monkeypatch=patch, capsys=capsys
        )
    last = tmp_path / "split" / "last.pth"
    assert code == 143, err[-3000:]
    assert "Traceback" not in err
    assert f"interrupted: SIGTERM: finished step 3 and wrote {last} (epoch 2 up to batch 2/4, step 3)" in err
    assert "continue with: python " in err and err.rstrip().endswith("--resume auto")
    ckpt = load_checkpoint(last)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"], ckpt["sampler_position"]) == (1, 2, 3, 16)
    assert {"optimizer", "scheduler", "ema", "rng", "totals"} <= set(ckpt)

    code, _, err = train_cli(*common, "--output", tmp_path / "split", "--resume", "auto")
    assert code == 0, err[-3000:]
    straight, resumed = load_checkpoint(tmp_path / "straight" / "last.pth"), load_checkpoint(last)
    assert resumed["step"] == straight["step"] == 4 and resumed["batch"] == 0
    assert_same_weights(straight["model"], resumed["model"])
    assert_same_weights(straight["ema"], resumed["ema"])
    assert_same_weights(straight["optimizer"]["state"][0], resumed["optimizer"]["state"][0])
    assert straight["history"][-1]["train_loss"] == resumed["history"][-1]["train_loss"]
    assert straight["history"][-1]["val_loss"] == resumed["history"][-1]["val_loss"]


@pytest.mark.slow
def test_sigterm_from_outside_with_loader_workers(tiny, tmp_path):
    """A real preemption: SIGTERM from another process while tools/train.py runs with 2 loader workers."""
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        str(REPO / "tools" / "train.py"),
        *tiny,
        "--workers",
        "2",
        "--epochs",
        "40",
        "--output",
        str(run),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    try:
        deadline = time.time() + 600
        while not (run / "last.pth").is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err and "interrupted: SIGTERM: " in err and f"wrote {run / 'last.pth'}" in err
    ckpt = load_checkpoint(run / "last.pth")
    assert ckpt["epoch"] >= 1 and "optimizer" in ckpt and ckpt["epoch"] < 40


def test_ctrl_c_names_what_last_pth_holds(tiny, tmp_path, monkeypatch, train_cli):
    def interrupt(out):
        raise KeyboardInterrupt

    call_counter(monkeypatch, at=5, action=interrupt)  # epoch 2, batch 2
    code, _, err = train_cli(*tiny, "--epochs", "2", "--output", tmp_path / "run")
    assert code == 130 and "Traceback" not in err
    assert f"interrupted: {tmp_path / 'run' / 'last.pth'} holds epoch 1, step 3" in err
    assert load_checkpoint(tmp_path / "run" / "last.pth")["epoch"] == 1


# --------------------------------------------------------------------------------------------- non-finite loss
def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch, train_cli):
    call_counter(monkeypatch, at=5, action=nan_loss)  # epoch 2, batch 2 (step 5)
    code, _, err = train_cli(*tiny, "--epochs", "2", "--output", tmp_path / "run")
    assert code == 2
    assert one_error_line(err) == (
        "error: loss became non-finite at step 5 (epoch 2, batch 2/3); stopped before updating the weights: "
        "last.pth is unchanged (epoch 1, step 3). Lower --lr, or pass --on-nonfinite skip to skip such steps"
    )
    ckpt = load_checkpoint(tmp_path / "run" / "last.pth")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())
    assert (tmp_path / "run" / "best.pth").is_file()


def test_nonfinite_loss_skip_counts_the_step(tiny, tmp_path, monkeypatch, train_cli):
    call_counter(monkeypatch, at=2, action=nan_loss)
    code, _, err = train_cli(*tiny, "--epochs", "1", "--on-nonfinite", "skip", "--output", tmp_path / "run")
    assert code == 0, err[-3000:]
    row = json.loads((tmp_path / "run" / "log.json").read_text())[-1]
    assert row["nonfinite_skipped"] == 1 and row["train_images"] == 16  # 3 batches of 8, one skipped
    ckpt = load_checkpoint(tmp_path / "run" / "last.pth")
    assert ckpt["step"] == 2 and all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


# ------------------------------------------------------------------------------------------------- disk full
def test_failed_checkpoint_write_keeps_the_previous_one(tiny, tmp_path, monkeypatch, capsys, train_cli):
    run = tmp_path / "run"
    code, _, _ = train_cli(*tiny, "--epochs", "2", "--stop-after", "1", "--output", run)
    assert code == 0
    before = (run / "last.pth").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", disk_full)
        code, _, err = run_tool(
            "tools/train.py",
            *tiny,
            "--epochs",
            "2",
            "--resume",
            "auto",
            "--output",
            run,
            monkeypatch=patch,
            capsys=capsys,
        )
    assert code == 2
    assert one_error_line(err) == (
        f"error: could not write {run / 'last.pth'} (No space left on device); "
        "the previous last.pth is intact (epoch 1, step 3)"
    )
    assert (run / "last.pth").read_bytes() == before and load_checkpoint(run / "last.pth")["epoch"] == 1
    assert not list(run.glob(".*.tmp"))  # the partial temporary file is gone


# ------------------------------------------------------------------------------ best.pth / last.pth, eval, export
@pytest.mark.slow
def test_few_classes_best_and_last_checkpoints_eval_export_resume(folder, tmp_path, monkeypatch, capsys, train_cli):
    """3 classes at 48 px: no top-5 anywhere (no KeyError, no always-100% val_top2); best.pth is weights and what
    inference needs, last.pth the full state, and eval / export / resume / --pretrained work or say why not."""
    from visiongates.export.sources import load_source

    data = folder
    run = tmp_path / "run"
    args = [
        "--model",
        "resnet18",
        "--data",
        data,
        "--img-size",
        "48",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--max-steps-per-epoch",
        "2",
        "--workers",
        "0",
        "--progress",
        "false",
        "--output",
        run,
    ]
    code, _, err = train_cli(*args, "--stop-after", "1")
    assert code == 0, err[-3000:]
    row = json.loads((run / "log.json").read_text())[-1]
    assert "val_top1" in row and not any(k.startswith("val_top") and k != "val_top1" for k in row)

    best, last = load_checkpoint(run / "best.pth"), load_checkpoint(run / "last.pth")
    assert not {"optimizer", "scheduler", "rng", "ema", "history"} & set(best)
    assert {"optimizer", "scheduler", "rng", "history"} <= set(last)
    assert (run / "best.pth").stat().st_size < 0.6 * (run / "last.pth").stat().st_size  # AdamW keeps 2 moments

    for name in ("best.pth", "last.pth"):
        code, out, err = run_tool(
            "tools/eval.py", run / name, "--data", data, "--workers", "0", monkeypatch=monkeypatch, capsys=capsys
        )
        assert code == 0 and "Traceback" not in err, err[-3000:]
        assert out.startswith("top-1 ") and "top-5" not in out and "on 12 images" in out
        model, info = load_source(str(run / name))
        assert info.labels == ["class0", "class1", "class2"] and info.input_size == (3, 48, 48)

    code, _, err = train_cli(*args, "--resume", run / "best.pth")
    assert code == 2 and one_error_line(err) == (
        f"error: '{run / 'best.pth'}' holds weights only (best.pth has no optimizer or scheduler state): resume from "
        f"last.pth, or start from these weights with --pretrained {run / 'best.pth'}"
    )
    code, _, err = train_cli(*args, "--resume", "auto")
    assert code == 0 and load_checkpoint(run / "last.pth")["epoch"] == 2
    code, _, err = train_cli(
        *[a for a in args if a != run], tmp_path / "ft", "--epochs", "1", "--pretrained", run / "best.pth"
    )
    assert code == 0, err[-3000:]


def test_eval_metrics_follow_one_top_k_rule():
    from visiongates.engine.metrics import ClassificationMeter

    for classes, key in ((2, None), (5, None), (6, "top5")):
        meter = ClassificationMeter(classes)
        meter.update(torch.randn(4, classes), torch.tensor([0, 1, 1, 0]))
        summary = meter.summary()
        assert [k for k in summary if k.startswith("top") and k != "top1"] == ([key] if key else [])


# ------------------------------------------------------------------------------------------------------- export
@pytest.mark.slow
def test_export_at_a_size_off_the_stride_is_static_and_says_so(tmp_path, monkeypatch, capsys):
    """cbam_resnet18 at 112 px (the family's dynamic graph needs multiples of 32): exported with fixed height and
    width, the printed summary and the metadata agree; --static-size at 64 says static too."""
    from visiongates.export.runtime import open_session, session_info

    for size, extra, reason in (
        (112, [], "multiples of 32, and 112x112 is not (--img-size 96 or 128 would be)"),
        (64, ["--static-size"], "static size requested"),
    ):
        output = tmp_path / f"m{size}.onnx"
        code, out, err = run_tool(
            "export/export_onnx.py",
            "cbam_resnet18",
            "--img-size",
            size,
            *extra,
            "--output",
            output,
            monkeypatch=monkeypatch,
            capsys=capsys,
        )
        assert code == 0, err[-3000:]
        assert f"batch dynamic; height and width fixed at {size}x{size} (" in out and reason in out
        assert "height and width dynamic" not in out and out.count(" ok") == 1  # one parity check: the fixed size
        info = session_info(open_session(output))
        assert info.dynamic == ["batch"] and info.input_size == (3, size, size) and info.size_multiple == 1


# ------------------------------------------------------------------------------------- detection / segmentation
RETINANET = REPO / "configs" / "det" / "retinanet_cbam_resnet18_fpn_coins.py"
UPERNET = REPO / "configs" / "seg" / "upernet_cbam_resnet18_coins.py"


@pytest.fixture
def coins(tmp_path, monkeypatch):
    """The tiny coins set that `mm_smoke.tiny_coins_options` describes, written where the configs will read it,
    and those options as --cfg-options words."""
    pytest.importorskip("mmdet")
    pytest.importorskip("mmseg")
    from mm_smoke import as_cli_options, tiny_coins_options
    from mmengine.logging import MMLogger

    from visiongates.data.coins_coco import build_coins_set

    # mmengine's loggers are process-wide and keep the stream they were made with: with the tools run in this
    # process, that is an earlier test's captured (closed) stderr, so each test starts with fresh ones
    MMLogger._instance_dict.clear()
    monkeypatch.setenv("VISIONGATES_DATA", str(tmp_path / "data"))
    options = tiny_coins_options()
    root = build_coins_set(tmp_path / "data" / "coins", **options["train_dataloader.dataset.coins_spec"])
    yield root, as_cli_options(options)
    MMLogger._instance_dict.clear()


def _checkpoints(work: Path) -> list[str]:
    return sorted(p.name for p in work.glob("*.pth")) if work.is_dir() else []


def test_mm_missing_image_stops_before_the_first_iteration(coins, tmp_path, monkeypatch, capsys):
    root, options = coins
    ann = json.loads((root / "annotations" / "instances_train.json").read_text())
    names = [image["file_name"] for image in ann["images"][:2]]
    for name in names:
        (root / "train" / name).unlink()
    work = tmp_path / "work"
    code, _, err = run_tool(
        "tools/mm/train.py",
        RETINANET,
        "--work-dir",
        work,
        "--cfg-options",
        *options,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    line = one_error_line(err)
    assert code == 2
    assert line.startswith(
        f"error: train: 2 file(s) that '{root / 'annotations' / 'instances_train.json'}' lists "
        f"are missing (e.g. {names[0]}, {names[1]};"
    )
    assert _checkpoints(work) == []


def test_mm_unknown_category_ids_stop_or_are_dropped(coins, tmp_path, monkeypatch, capsys):
    root, options = coins
    path = root / "annotations" / "instances_train.json"
    ann = json.loads(path.read_text())
    for a in ann["annotations"][:3]:
        a["category_id"] = 99
    path.write_text(json.dumps(ann))
    code, _, err = run_tool(
        "tools/mm/train.py",
        RETINANET,
        "--work-dir",
        tmp_path / "w1",
        "--cfg-options",
        *options,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2 and one_error_line(err) == (
        f"error: train: 3 annotation(s) in '{path}' have category ids [99] that its categories list does not "
        "define; pass --unknown-categories drop to train without them"
    )

    from visiongates.mm.checks import check_dataset

    class Dataset:  # what check_dataset reads of an mmdet CocoDataset
        ann_file, cat_ids, metainfo = str(path), [1], {"classes": ("coin",)}

        def __len__(self):
            return 0

    assert "3 annotation(s) with unknown category ids [99] dropped" in check_dataset(Dataset(), "train", "drop")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "model.backbone.out_indices=(5,)",
            "error: the config does not build: out_indices (5,) is invalid for 'cbam_resnet18': it has 5 feature "
            "levels, so each index must be an integer in -5..4",
        ),
        (
            "model.backbone.out_indices=(2,3,4)",
            "error: backbone cbam_resnet18 with out_indices (2, 3, 4) gives 3 level(s) with channels [128, 256, 512], "
            "but the neck FPN expects in_channels [64, 128, 256, 512]; make model.neck.in_channels match, or choose "
            "model.backbone.out_indices that give it",
        ),
        ("model.backbone.type=NoSuchBackbone", "error: the config does not build: NoSuchBackbone is not in the"),
    ],
)
def test_mm_model_config_errors_are_one_line(option, message, coins, tmp_path, monkeypatch, capsys):
    _, options = coins
    code, _, err = run_tool(
        "tools/mm/train.py",
        RETINANET,
        "--work-dir",
        tmp_path / "work",
        "--cfg-options",
        *options,
        option,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2 and one_error_line(err).startswith(message)


def test_mm_seg_head_channels_are_checked(coins, tmp_path, monkeypatch, capsys):
    _, options = coins
    code, _, err = run_tool(
        "tools/mm/train.py",
        UPERNET,
        "--work-dir",
        tmp_path / "work",
        "--cfg-options",
        *options,
        "model.backbone.out_indices=(1,2,3)",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 2 and "reads in_index [0, 1, 2, 3], but the backbone returns only 3 levels" in one_error_line(err)


@pytest.mark.slow
def test_mm_sigterm_names_the_checkpoint_mmengine_wrote(coins, tmp_path, monkeypatch, capsys):
    """SIGTERM in epoch 2 (iteration 3 of 4): the message names epoch_1.pth and the --resume command, exit 143;
    resuming from it finishes the run."""
    from visiongates.mm.checks import StopOnSignalHook

    _, options = coins
    work = tmp_path / "work"
    args = [
        "--work-dir",
        work,
        "--cfg-options",
        *options,
        "train_cfg.max_epochs=2",
        "train_cfg.val_interval=2",
        "default_hooks.checkpoint.interval=1",
        "default_hooks.checkpoint.save_best=None",
    ]
    original = StopOnSignalHook.after_train_iter

    def after_train_iter(self, runner, *rest, **kwargs):
        if runner.iter == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, runner, *rest, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(StopOnSignalHook, "after_train_iter", after_train_iter)
        code, _, err = run_tool("tools/mm/train.py", RETINANET, *args, monkeypatch=patch, capsys=capsys)
    assert code == 143 and "Traceback" not in err, err[-3000:]
    assert (
        f"interrupted: SIGTERM at iteration 3 (epoch 2): the latest checkpoint mmengine wrote is "
        f"{work / 'epoch_1.pth'}" in err
    )
    assert err.rstrip().endswith(f"--resume {work / 'epoch_1.pth'}")
    assert _checkpoints(work) == ["epoch_1.pth"]

    code, _, err = run_tool(
        "tools/mm/train.py", RETINANET, *args, "--resume", work / "epoch_1.pth", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 0, err[-3000:]
    assert "epoch_2.pth" in _checkpoints(work)


@pytest.mark.slow
def test_mm_show_dir_adds_the_visualization_hook(coins, tmp_path, monkeypatch, capsys):
    """tools/mm/test.py --show-dir with a config that has no visualization hook nor visualizer: PNGs anyway."""
    _, options = coins
    work = tmp_path / "work"
    code, _, err = run_tool(
        "tools/mm/train.py",
        UPERNET,
        "--work-dir",
        work,
        "--cfg-options",
        *options,
        "train_cfg.max_iters=1",
        "train_cfg.val_interval=1",
        "default_hooks.checkpoint.interval=1",
        "train_dataloader.batch_size=2",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 0, err[-3000:]
    show = tmp_path / "show"
    code, out, err = run_tool(
        "tools/mm/test.py",
        UPERNET,
        work / "iter_1.pth",
        "--work-dir",
        tmp_path / "t",
        "--show-dir",
        show,
        "--cfg-options",
        *options,
        "default_hooks.visualization=None",
        "visualizer=None",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 0 and "Traceback" not in err, err[-3000:]
    assert "mIoU" in json.loads(out.strip().splitlines()[-1])
    assert len(list(show.rglob("*.png"))) == 4


def test_dynamic_size_problem_names_the_sizes_that_work():
    from visiongates.export.families import spec_for
    from visiongates.export.onnx_export import dynamic_size_problem

    def problem(name, size):
        return dynamic_size_problem(name, spec_for(name), size, size)

    assert problem("cbam_resnet18", 112) == (
        "'cbam_resnet18' exports with dynamic sizes that are multiples of 32, "
        "and 112x112 is not (--img-size 96 or 128 would be)"
    )
    assert problem("cbam_resnet18", 20) == "'cbam_resnet18' exports with dynamic sizes from 32 px; got 20x20"
    assert problem("cbam_resnet18", 128) == problem("gpsa_convit_tiny", 112) == problem("resnet18", 100) == ""


def test_resume_command_replaces_the_resume_option(monkeypatch):
    from visiongates.cli import resume_command

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = ["tools/train.py", "--config", "c.yaml", "--resume", "old.pth", "--lr", "1e-3"]
    assert resume_command(("--resume", "auto"), argv) == "python tools/train.py --config c.yaml --lr 1e-3 --resume auto"
    argv = ["tools/mm/train.py", "my cfg.py", "--resume", "--work-dir", "w"]
    assert resume_command(("--resume", "w/epoch_1.pth"), argv) == (
        "python tools/mm/train.py 'my cfg.py' --work-dir w --resume w/epoch_1.pth"
    )
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resume_command(("--resume", "auto"), ["tools/train.py"]).startswith("torchrun --nproc_per_node 2 ")


def test_override_flags_are_the_config_fields_and_default_to_none():
    import argparse

    from visiongates.cli import add_override_flags

    parser = argparse.ArgumentParser()
    add_override_flags(parser, batch_size=int, lr=float, device=str)
    assert vars(parser.parse_args(["--batch-size", "8", "--lr", "0.5"])) == {"batch_size": 8, "lr": 0.5, "device": None}
    with pytest.raises(SystemExit):
        parser.parse_args(["--batch_size", "8"])  # the flag is spelled with hyphens, as every other flag


# ------------------------------------------------------------------- bad input across the tools (issue 28)
def _copy_tree(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def _truncated_png(path: Path) -> Path:
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    return path


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory) -> dict[str, Path]:
    """A tiny tools/train.py run (resnet18, 32 px, 1 epoch of 3 steps) and its ONNX export. Its output folder
    starts with the temporary file a `kill -9` during a checkpoint write leaves behind (see the test below)."""
    from quick_train import train_run

    from visiongates.export import export_source

    run = tmp_path_factory.mktemp("trained") / "run"
    run.mkdir()
    stale = run / ".last.pth.k9x2c1.tmp"
    stale.write_bytes(b"half a checkpoint")
    train_run(run, model="resnet18", data=str(folder), img_size=32, batch_size=8, max_steps_per_epoch=3, epochs=1)
    onnx_path = export_source(str(run / "best.pth"), run / "best.onnx").path
    return {"run": run, "best": run / "best.pth", "onnx": onnx_path, "stale": stale}


def test_stale_checkpoint_temporaries_are_removed_on_the_next_start(trained):
    assert not trained["stale"].exists()
    assert not list(trained["run"].glob(".*.tmp")) and (trained["run"] / "last.pth").is_file()


def test_eval_unknown_class_folder_is_an_error_or_left_out_on_request(folder, trained, tmp_path, monkeypatch, capsys):
    data = _copy_tree(folder, tmp_path / "data")
    _copy_tree(data / "val" / "class0", data / "val" / "wasps")
    code, out, err = run_tool(
        "tools/eval.py", trained["best"], "--data", data, "--workers", "0", monkeypatch=monkeypatch, capsys=capsys
    )
    line = one_error_line(err)
    assert code == 2 and "['wasps']" in line and "--known-classes-only" in line and not out
    code, out, err = run_tool(
        "tools/eval.py",
        trained["best"],
        "--data",
        data,
        "--workers",
        "0",
        "--known-classes-only",
        "--output",
        tmp_path / "eval",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 0, err[-3000:]
    assert "on 12 images" in out and "left out unknown class folder(s) (wasps: 4 images)" in out
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["left_out"] == {"wasps": 4}


def test_train_and_val_class_sets_must_match(folder, tiny, tmp_path, train_cli):
    data = _copy_tree(folder, tmp_path / "data")
    _copy_tree(data / "val" / "class0", data / "val" / "wasps")
    _copy_tree(data / "train" / "class0", data / "train" / "bees")
    args = [a if a != str(folder) else str(data) for a in tiny]
    code, _, err = train_cli(*args, "--output", tmp_path / "run")
    assert code == 2 and one_error_line(err) == (
        f"error: train/ and val/ of '{data}' hold different class folders: only in train/: ['bees']; "
        "only in val/: ['wasps']"
    )
    assert not (tmp_path / "run" / "last.pth").exists()


def test_unreadable_images_are_skipped_and_counted_by_validate_onnx(folder, trained, tmp_path, monkeypatch, capsys):
    data = _copy_tree(folder, tmp_path / "data")
    _truncated_png(data / "val" / "class1" / "cut.png")
    code, out, err = run_tool(
        "export/validate_onnx.py", trained["onnx"], "--data", data, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 0, err[-3000:]
    result = json.loads(out[out.index("{") :])
    assert result["images"] == 12 and result["top1_agree"] == 12 and result["skipped"] == 1
    assert result["skipped_files"] == [str(data / "val" / "class1" / "cut.png")]


def test_unreadable_images_are_skipped_and_counted_by_quantize_onnx(folder, trained, tmp_path, monkeypatch, capsys):
    data = _copy_tree(folder, tmp_path / "data")
    _truncated_png(data / "val" / "class1" / "cut.png")
    _truncated_png(data / "train" / "class2" / "cut.png")
    output = tmp_path / "int8.onnx"
    static = ["export/quantize_onnx.py", trained["onnx"], "--method", "static", "--calibration", data / "train"]
    extra = ["--calibration-images", "8", "--data", data, "--runs", "2"]
    code, out, err = run_tool(*static, *extra, "--output", output, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["images"] == 12 and result["skipped"] == 1 and output.is_file()
    code, out, err = run_tool(*static, "--output", output, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "calibrated on 48 images (1 unreadable skipped)" in out, out + err[-3000:]


def test_compare_skips_unreadable_images_and_refuses_another_model(trained, tmp_path, monkeypatch, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 + 80 * i, np.uint8)).save(images / f"{i}.png")
    _truncated_png(images / "cut.png")
    code, out, err = run_tool(
        "export/infer_onnx.py",
        trained["onnx"],
        images,
        "--compare",
        trained["best"],
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 0, out + err[-3000:]
    assert "agree on top-1 for 2/2 images (1 unreadable skipped)" in out
    assert f"{images / 'cut.png'}" in out and "skipped" in out  # named as given, in the table
    code, out, err = run_tool(
        "export/infer_onnx.py", trained["onnx"], images, "--compare", "resnet34", monkeypatch=monkeypatch, capsys=capsys
    )
    line = one_error_line(err)
    assert code == 2 and "'resnet34' is not the model this .onnx file was exported from" in line and not out


@pytest.mark.parametrize(("task", "suffix"), [("restoration", "restored"), ("segmentation", "mask")])
def test_infer_outputs_never_collide(tiny_models, task, suffix, tmp_path, monkeypatch, capsys):
    from visiongates_runtime.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("a/x.jpg", "b/x.jpg", "b/x.png"):
        Path(name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(len(name)).integers(0, 256, (20, 30, 3), np.uint8)).save(name)
    code = main([str(tiny_models[task]), "a/x.jpg", "b/x.jpg", "b/x.png", "--output", "out"])
    out, err = capsys.readouterr()
    assert code == 0, err
    written = sorted(str(p.relative_to("out")) for p in Path("out").rglob("*.png"))
    assert written == [f"a/x_{suffix}.png", f"b/x_jpg_{suffix}.png", f"b/x_png_{suffix}.png"]
    assert out.splitlines() == [
        f"a/x.jpg -> out/a/x_{suffix}.png",
        f"b/x.jpg -> out/b/x_jpg_{suffix}.png",
        f"b/x.png -> out/b/x_png_{suffix}.png",
    ]
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save("b/x_jpg.png")  # would take b/x.jpg's output name
    code = main([str(tiny_models[task]), "b/x.jpg", "b/x.png", "b/x_jpg.png", "--output", "out2"])
    out, err = capsys.readouterr()
    assert code == 2 and not Path("out2").exists() and not out
    assert one_error_line(err) == (
        f"error: 'b/x.jpg' and 'b/x_jpg.png' would both be written to "
        f"'out2/x_jpg_{suffix}.png'; nothing was written (rename one, or run them "
        "separately with different --output folders)"
    )


@pytest.mark.parametrize("shape", [(1, 9), (9, 1), (1, 1)])
def test_restored_image_of_a_unit_height_or_width_keeps_its_shape(tiny_models, shape, tmp_path, capsys):
    from visiongates_runtime.cli import main

    Image.fromarray(np.full((*shape, 3), 90, np.uint8)).save(tmp_path / "thin.png")
    code = main([str(tiny_models["restoration"]), str(tmp_path / "thin.png"), "--output", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    restored = np.asarray(Image.open(tmp_path / "out" / "thin_restored.png"))
    assert restored.shape == (*shape, 3)


def test_classification_results_name_files_as_given(trained, tmp_path, monkeypatch, capsys):
    from visiongates_runtime.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("a/x.png", "b/x.png"):
        Path(name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((40, 40, 3), 100, np.uint8)).save(name)
    assert main([str(trained["onnx"]), "a/x.png", "b/x.png", "--topk", "1"]) == 0
    assert [line.split(": ")[0] for line in capsys.readouterr().out.splitlines()] == ["a/x.png", "b/x.png"]


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ("model.pth", "'{p}' is not a loadable ONNX model ("),
        ("absent.onnx", "ONNX file '{p}' does not exist"),
        ("folder", "'{p}' is a folder, not an ONNX file"),
    ],
)
def test_quantize_onnx_bad_model_file_is_one_line(tool, message, tmp_path, monkeypatch, capsys):
    path = tmp_path / tool
    if tool == "model.pth":
        torch.save({"model": {"w": torch.zeros(2)}}, path)
    elif tool == "folder":
        path.mkdir()
    code, _, err = run_tool(
        "export/quantize_onnx.py", path, "--output", tmp_path / "int8.onnx", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2 and one_error_line(err).startswith(f"error: {message.format(p=path)}")
    assert not (tmp_path / "int8.onnx").exists()


@pytest.mark.parametrize("tool", ["tools/train.py"])
def test_config_yaml_syntax_error_is_one_line(tool, tmp_path, monkeypatch, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model: [resnet18\nlr: 0.1\n")
    code, _, err = run_tool(
        tool, "--config", config, "--output", tmp_path / "run", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2 and one_error_line(err).startswith(
        f"error: config file '{config}' is not valid YAML at line 2, column 3: "
    )


def test_a_folder_where_a_checkpoint_is_expected_says_so(trained, tmp_path, monkeypatch, capsys):
    run = trained["run"]
    for tool, args in (
        ("tools/eval.py", [run]),
        ("export/export_onnx.py", [run, "--output", tmp_path / "m.onnx"]),
        ("export/validate_onnx.py", [trained["onnx"], "--source", run]),
    ):
        code, _, err = run_tool(tool, *args, monkeypatch=monkeypatch, capsys=capsys)
        assert code == 2 and one_error_line(err) == (
            f"error: checkpoint '{run}' is a folder, not a checkpoint file (it holds best.pth, last.pth)"
        ), tool
    code, _, err = run_tool("export/validate_onnx.py", run, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and one_error_line(err) == f"error: '{run}' is a folder, not an ONNX file"


def test_dangling_symlink_in_a_class_folder_is_skipped_and_counted(folder, tmp_path):
    from visiongates.data import ImageFolderDataset, collate_skip, eval_transform

    data = _copy_tree(folder / "val", tmp_path / "val")
    (data / "class1" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    dataset = ImageFolderDataset(data, eval_transform(32))
    assert len(dataset) == 13
    images, labels, skipped = collate_skip([dataset[i] for i in range(len(dataset))])
    assert skipped == 1 and len(labels) == 12 and dataset.unreadable == {data / "class1" / "gone.png"}


def test_exif_orientation_is_applied_by_the_one_decoder(tmp_path):
    """A 30 x 20 (W x H) JPEG tagged 'rotate 90 clockwise' (orientation 6) is 20 x 30 upright: the same in the
    training dataset, the runtime's reader and the decoder they share."""
    from visiongates_runtime.images import load_array, load_rgb

    from visiongates.data import ImageFolderDataset

    (tmp_path / "cls").mkdir()
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :10] = 255  # white on the left: after turning, white on top
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "cls" / "phone.jpg", exif=exif.tobytes(), quality=95)
    assert load_rgb(tmp_path / "cls" / "phone.jpg").size == (20, 30)
    array = load_array(tmp_path / "cls" / "phone.jpg")
    assert array.shape == (30, 20, 3) and array[:8].mean() > 200 and array[-8:].mean() < 50
    item, _ = ImageFolderDataset(tmp_path)[0]
    assert item.shape == (30, 20, 3)


def test_wrong_file_types_are_named_in_one_line(trained, tmp_path, monkeypatch, capsys):
    """An ONNX file or a text file where a checkpoint is expected, and a folder for tools/convert_checkpoint.py."""
    onnx_path, text = trained["onnx"], tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    (tmp_path / "folder").mkdir()
    cases = [
        (
            "tools/eval.py",
            [onnx_path],
            f"'{onnx_path}' is an ONNX file, not a PyTorch checkpoint (export/ tools read it)",
        ),
        (
            "tools/eval.py",
            [text],
            f"'{text}' is not a PyTorch checkpoint (neither the zip archive torch.save writes nor a pickle of tensors)",
        ),
        (
            "export/export_onnx.py",
            [onnx_path],
            f"'{onnx_path}' is an ONNX file; give the checkpoint or registry name it was exported from",
        ),
        (
            "tools/convert_checkpoint.py",
            [tmp_path / "folder", "--model", "resnet18"],
            f"checkpoint '{tmp_path / 'folder'}' is a folder, not a checkpoint file",
        ),
    ]
    for tool, args, message in cases:
        code, _, err = run_tool(tool, *args, monkeypatch=monkeypatch, capsys=capsys)
        assert code == 2 and one_error_line(err) == f"error: {message}", (tool, err[-2000:])
