"""Fine-tuning on the embedded coins set: save, resume and evaluate (with PNGs), torchrun with 2 CPU processes,
and the README's recipe for one's own COCO-format data. (The from-scratch accuracy runs are documented, not tests:
they take minutes of CPU each.)"""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")

from mm_smoke import as_cli_options, tiny_coins_options  # noqa: E402

from visiongates.errors import VisionGatesError  # noqa: E402
from visiongates.mm.finetune import cli, config_scope, load_config, process_group_teardown, train  # noqa: E402
from visiongates.mm.finetune import test as evaluate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RETINANET = REPO / "configs" / "det" / "retinanet_cbam_resnet18_fpn_coins.py"
UPERNET = REPO / "configs" / "seg" / "upernet_cbam_resnet18_coins.py"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def coins_home(tmp_path, monkeypatch):
    """Configs read $VISIONGATES_DATA when they are parsed: point it at a fresh folder."""
    monkeypatch.setenv("VISIONGATES_DATA", str(tmp_path / "data"))
    return tmp_path


def _mm_load(path: Path) -> dict:
    from mmengine.runner.checkpoint import _load_checkpoint

    return _load_checkpoint(str(path), map_location="cpu")


def _run_tool(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / tool), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        cwd=REPO,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_the_config_says_detection_or_segmentation(coins_home):
    """tools/mm/train.py and test.py serve both: the config's default_scope (or its model type's scope) decides, and
    a config that is neither stops with one clear error before anything is built."""
    assert config_scope(load_config(RETINANET)) == "mmdet"
    assert config_scope(load_config(UPERNET)) == "mmseg"
    own = coins_home / "own.py"
    own.write_text("model = dict(type='mmseg.EncoderDecoder')\n")
    assert config_scope(load_config(own)) == "mmseg"
    other = coins_home / "classifier.py"
    other.write_text("default_scope = 'mmpretrain'\nmodel = dict(type='ImageClassifier')\n")
    for mode, argv in (("train", [str(other)]), ("test", [str(other), str(RETINANET)])):
        with pytest.raises(VisionGatesError, match="neither an mmdetection nor an mmsegmentation config: its "):
            cli(mode, argv)


@pytest.mark.slow
def test_detection_saves_resumes_and_evaluates(coins_home):
    work = coins_home / "work"
    options = {**tiny_coins_options(), "train_cfg.val_interval": 1, "default_hooks.checkpoint.interval": 1}
    train(RETINANET, work_dir=str(work), cfg_options={**options, "train_cfg.max_epochs": 1})
    first = _mm_load(work / "epoch_1.pth")
    assert first["meta"]["epoch"] == 1 and first["meta"]["iter"] == 2  # 8 images, batch 4

    runner = train(RETINANET, work_dir=str(work), resume="auto", cfg_options={**options, "train_cfg.max_epochs": 2})
    assert runner.epoch == 2 and runner.iter == 4  # continued from epoch 1, did not start over
    second = _mm_load(work / "epoch_2.pth")
    assert second["meta"]["epoch"] == 2 and second["meta"]["iter"] == 4 and second["optimizer"]["state"]
    assert "train/loss" in second["message_hub"]["log_scalars"]  # HistoryBuffers read back by the safe loader

    show = coins_home / "show"
    result = _run_tool(
        "mm/test.py",
        str(RETINANET),
        str(work / "epoch_2.pth"),
        "--work-dir",
        str(coins_home / "t"),
        "--show-dir",
        str(show),
        "--cfg-options",
        *as_cli_options(tiny_coins_options()),
        "model.test_cfg.score_thr=0.0",  # 4 iterations in, scores sit near the 0.01 prior
        env={"VISIONGATES_DATA": os.environ["VISIONGATES_DATA"]},
    )
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 <= metrics["coco/bbox_mAP_50"] <= 1.0
    pngs = sorted(show.rglob("*.png"))
    assert len(pngs) == 4 and all(p.read_bytes()[:8] == PNG for p in pngs)


@pytest.mark.slow
def test_segmentation_saves_resumes_and_evaluates(coins_home):
    work = coins_home / "work"
    options = {
        **tiny_coins_options(),
        "train_cfg.val_interval": 2,
        "default_hooks.checkpoint.interval": 2,
        "train_dataloader.batch_size": 2,
    }
    train(UPERNET, work_dir=str(work), cfg_options={**options, "train_cfg.max_iters": 2})
    assert _mm_load(work / "iter_2.pth")["meta"]["iter"] == 2
    runner = train(UPERNET, work_dir=str(work), resume="auto", cfg_options={**options, "train_cfg.max_iters": 4})
    assert runner.iter == 4
    fourth = _mm_load(work / "iter_4.pth")
    assert fourth["meta"]["iter"] == 4 and "train/loss" in fourth["message_hub"]["log_scalars"]

    show = coins_home / "show"
    metrics = evaluate(
        UPERNET,
        work / "iter_4.pth",
        work_dir=str(coins_home / "t"),
        show_dir=str(show),
        cfg_options=tiny_coins_options(),
    )
    assert 0.0 <= metrics["mIoU"] <= 100.0
    pngs = sorted(show.rglob("*.png"))
    assert len(pngs) == 4 and all(p.read_bytes()[:8] == PNG for p in pngs)


@pytest.mark.slow
@pytest.mark.parametrize("config, ckpt", [(RETINANET, "epoch_1.pth"), (UPERNET, "iter_2.pth")])
def test_torchrun_two_cpu_processes(coins_home, config, ckpt):
    """mmengine's launcher under torchrun: a gloo group, DDP without device ids, a couple of iterations; one tool for
    detection and segmentation."""
    work = coins_home / "ddp"
    options = {**tiny_coins_options(), "train_dataloader.batch_size": 2}
    if config == RETINANET:
        options.update({"train_cfg.max_epochs": 1, "train_cfg.val_interval": 1})  # 8 images / (2 x 2) = 2 iters
    else:
        options.update({"train_cfg.max_iters": 2, "train_cfg.val_interval": 2, "default_hooks.checkpoint.interval": 2})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = [*torchrun, str(REPO / "tools" / "mm" / "train.py"), str(config), "--launcher", "pytorch"]
    cmd += ["--work-dir", str(work), "--cfg-options", *as_cli_options(options)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "Distributed launcher: pytorch" in log and "Distributed training: True" in log
    assert "process group backend: gloo, rank 0 of 2" in log and "rank 1 of 2" in log
    assert (work / ckpt).is_file()


@pytest.mark.parametrize("fails", [False, True])
def test_tools_destroy_their_process_group(tmp_path, fails):
    """A rank that exits with its gloo group alive can abort in interpreter finalisation (issue 27): the tools'
    teardown destroys it, after a run that succeeded (barrier first) and after one that raised."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with pytest.raises(RuntimeError) if fails else contextlib.nullcontext(), process_group_teardown():
            if fails:
                raise RuntimeError("a failed run")
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


USER_CONFIG = """
_base_ = ['{base}']
classes = ('coin',)
data_root = '{root}/'
model = dict(
    backbone=dict(checkpoint='{checkpoint}'),
    bbox_head=dict(num_classes=len(classes)))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), indices=2,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/')))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), indices=1,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1)
"""


@pytest.mark.slow
def test_readme_recipe_for_own_coco_data(tmp_path):
    """The README's recipe: a COCO-format folder of one's own, a zoo backbone with a local classifier checkpoint."""
    import timm

    from visiongates.data.coins_coco import build_coins_set

    root = build_coins_set(tmp_path / "mydata", num_train=4, num_val=2, image_size=96)
    torch.save({"model": timm.create_model("cbam_resnet50").state_dict()}, tmp_path / "cls.pth")
    config = tmp_path / "my_retinanet.py"
    config.write_text(
        USER_CONFIG.format(
            base=REPO / "configs/det/retinanet_cbam_resnet50_fpn_1x_coco.py", root=root, checkpoint=tmp_path / "cls.pth"
        )
    )
    runner = train(
        config,
        work_dir=str(tmp_path / "work"),
        cfg_options={
            "train_dataloader.dataset.pipeline.2.scale": (96, 96),
            "val_dataloader.dataset.pipeline.1.scale": (96, 96),
        },
    )
    assert runner.iter == 1 and (tmp_path / "work" / "epoch_1.pth").is_file()
