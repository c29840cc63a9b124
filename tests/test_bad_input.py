"""Bad input gets a clear error naming the problem, or is skipped and counted; nothing is lost."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from visiongates.data import ImageFolderDataset, collate_skip, eval_transform
from visiongates.engine.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from visiongates.errors import CheckpointError, DataError, UnknownModelError
from visiongates.models import check_model_name

REPO = Path(__file__).resolve().parents[1]


def _tiny_folder(root: Path, source: Path, per_class: int = 3) -> Path:
    """A copy of a few real photos per class from the shared set."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.glob("*.jpg"))[:per_class]:
            shutil.copy(image, root / class_dir.name / image.name)
    return root


def test_corrupt_images_are_skipped_and_counted(tmp_path, hymenoptera, caplog):
    root = _tiny_folder(tmp_path / "train", hymenoptera / "train")
    good = sorted((root / "ants").glob("*.jpg"))[0]
    (root / "ants" / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (root / "bees" / "notes.jpg").write_text("this is a text file, not a JPEG")
    dataset = ImageFolderDataset(root, eval_transform(32))
    assert len(dataset) == 8
    with caplog.at_level("WARNING"):
        items = [dataset[i] for i in range(len(dataset))]
    images, labels, skipped = collate_skip(items)
    assert skipped == 2 and len(labels) == 6 and images.shape == (6, 3, 32, 32)
    assert "truncated.jpg" in caplog.text and "notes.jpg" in caplog.text


def test_missing_and_empty_folders_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nowhere")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageFolderDataset(tmp_path / "empty_root")
    (tmp_path / "data" / "cats").mkdir(parents=True)
    (tmp_path / "data" / "dogs").mkdir(parents=True)
    with pytest.raises(DataError, match="cats.*contains no images"):
        ImageFolderDataset(tmp_path / "data")
    with pytest.raises(DataError, match="missing"):
        ImageFolderDataset(tmp_path / "data", classes=["cats", "birds"])


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="cbam_resnet50"):
        check_model_name("cbam_resnet5")
    assert check_model_name("das_resnet18") == "das_resnet18"


def test_truncated_and_foreign_checkpoints(tmp_path):
    model = timm.create_model("cbam_resnet18", num_classes=4)
    path = save_checkpoint({"model": model.state_dict()}, tmp_path / "ok.pth")
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pth")
    other = timm.create_model("das_resnet18", num_classes=4)
    with pytest.raises(CheckpointError, match="does not fit DasResNet: .*missing"):
        load_model_weights(other, load_checkpoint(path)["model"])
    wrong_classes = timm.create_model("cbam_resnet18", num_classes=7)
    with pytest.raises(CheckpointError, match=r"2 with other shapes \(e.g. fc.bias: \(4,\) vs \(7,\)\)"):
        load_model_weights(wrong_classes, load_checkpoint(path)["model"])


class _Payload:
    def __reduce__(self):
        return (print, ("code ran during load",))


def test_checkpoint_with_code_is_refused(tmp_path):
    torch.save({"model": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="safe load refuses"):
        load_checkpoint(tmp_path / "evil.pth")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "cbam_resnet5"], "unknown model 'cbam_resnet5'. Did you mean"),
        (["--data", "/nonexistent/folder"], "needs train/ and val/ sub-folders"),
        (["--resume", "/nonexistent/last.pth"], "does not exist"),
        (["--config", "/nonexistent.yaml"], "config file '/nonexistent.yaml' does not exist"),
    ],
)
def test_train_cli_errors_are_one_line(args, message, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "train.py"),
            "--output",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--img-size",
            "32",
            "--workers",
            "0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
