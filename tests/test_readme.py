"""The README: its model table is the one the registry generates (regenerate: make model-table), and its commands
work from a clone alone (no ../shared; the sample photo folder they use instead is a valid ImageFolder)."""

from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import ImageFolder

import visiongates  # noqa: F401
from visiongates.data import ImageFolderDataset, write_sample_photos
from visiongates.errors import DataError
from visiongates.models import replace_model_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_model_table_is_current():
    text = README.read_text()
    assert replace_model_table(text) == text, "README model table is stale: run `make model-table`"


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def _outside_benchmarks(text: str) -> str:
    """The README without its Benchmarks section, whose MSViT line records a run on the shared photos."""
    start = text.index("\n## Benchmarks\n")
    end = text.find("\n## ", start + 1)
    return text[:start] + (text[end:] if end != -1 else "")


def test_readme_commands_need_no_shared_folder():
    """Every README command works from a clone alone: nothing points at ../shared (a folder beside this checkout)."""
    text = _outside_benchmarks(README.read_text())
    hits = [line for line in text.splitlines() if "shared/data" in line or "../shared" in line]
    assert not hits, hits


def test_restore_configs_need_no_shared_folder():
    for config in (README.parent / "configs").rglob("*.yaml"):
        assert "../shared" not in config.read_text(), config


def test_sample_photos_make_an_image_folder(tmp_path):
    """tools/data/write_sample_photos.py's folder loads as an ImageFolder (torchvision's and ours), same classes in both
    splits, the requested counts, and val images that differ from every train image."""
    counts = write_sample_photos(tmp_path, size=48, train_per_class=3, val_per_class=2, seed=1)
    train, val = ImageFolder(str(tmp_path / "train")), ImageFolder(str(tmp_path / "val"))
    assert train.classes == val.classes == sorted(counts["train"]) and len(train.classes) >= 2
    assert len(train) == 3 * len(train.classes) and len(val) == 2 * len(val.classes)
    image, _ = train[0]
    assert image.size == (48, 48) and image.mode == "RGB"
    ours = ImageFolderDataset(tmp_path / "val")
    assert ours.classes == val.classes
    pixels = [np.asarray(train.loader(p), dtype=np.int16) for p, _ in train.samples]
    for path, _ in val.samples:
        v = np.asarray(val.loader(path), dtype=np.int16)
        assert min(np.abs(v - t).mean() for t in pixels) > 1.0, path
    with pytest.raises(DataError):
        write_sample_photos(tmp_path / "bad", size=48, train_per_class=0)
