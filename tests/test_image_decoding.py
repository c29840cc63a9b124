"""The one image decoder (visiongates_runtime.images.load_rgb): every PIL mode becomes the 8-bit RGB picture it
shows, decompression bombs and unreadable files are refused by name, and training skips and counts them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from visiongates_runtime.images import ImageDecodeError, load_rgb

from visiongates.data import ImageFolderDataset, collate_skip, eval_transform
from visiongates.errors import DataError

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (12, 17), dtype=np.uint8)
RGB = RNG.integers(0, 256, (12, 17, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (12, 17), dtype=np.uint8)
ALPHA[0, :5] = (0, 255, 0, 255, 128)


def grey3(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1)


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float64) / 255
    return rgb * a + 255 * (1 - a)


def palette_with_transparency() -> tuple[Image.Image, np.ndarray]:
    indices = RNG.integers(0, 4, (12, 17), dtype=np.uint8)
    colours = np.array([[200, 10, 10], [10, 200, 10], [10, 10, 200], [0, 0, 0]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(colours.flatten().tolist())
    image.info["transparency"] = 3  # index 3 (black in the palette) is transparent: must come out white
    expected = colours[indices].astype(np.float64)
    expected[indices == 3] = 255
    return image, expected


def cases() -> dict[str, tuple[Image.Image, str, np.ndarray]]:
    """mode -> (image, file suffix that keeps the mode, expected RGB values)."""
    bits = GREY > 127
    grey16 = GREY.astype(np.uint16) * 257 + RNG.integers(0, 100, GREY.shape).astype(np.uint16)
    cmyk = RNG.integers(0, 256, (12, 17, 4), dtype=np.uint8)
    palette, palette_expected = palette_with_transparency()
    floats = RNG.random((12, 17)).astype(np.float32) * 1.2 - 0.1  # outside [0, 1] too: clipped
    ints = RNG.integers(-500, 70000, (12, 17)).astype(np.int32)
    return {
        "1": (Image.fromarray(bits), ".png", grey3(bits * 255.0)),
        "L": (Image.fromarray(GREY), ".png", grey3(GREY)),
        "LA": (Image.fromarray(np.dstack([GREY, ALPHA]), "LA"), ".png", on_white(grey3(GREY), ALPHA)),
        "P": (palette, ".png", palette_expected),
        "RGB": (Image.fromarray(RGB), ".png", RGB),
        "RGBA": (Image.fromarray(np.dstack([RGB, ALPHA])), ".png", on_white(RGB, ALPHA)),
        "CMYK": (
            Image.fromarray(cmyk, "CMYK"),
            ".tif",  # no colour profile: (255 - C)(255 - K) / 255
            (255.0 - cmyk[..., :3]) * (255.0 - cmyk[..., 3:]) / 255,
        ),
        "I;16": (Image.fromarray(grey16), ".png", grey3(np.round(grey16 / 257))),
        "I;16B": (
            Image.frombytes("I;16B", (17, 12), grey16.astype(">u2").tobytes()),
            ".tif",
            grey3(np.round(grey16 / 257)),
        ),
        "I": (Image.fromarray(ints), ".tif", grey3(np.round(np.clip(ints, 0, 65535) / 257))),
        "F": (Image.fromarray(floats), ".tif", grey3(np.round(np.clip(floats, 0, 1) * 255))),
    }


@pytest.mark.parametrize("mode", list(cases()))
def test_every_mode_decodes_to_the_8bit_rgb_it_shows(mode, tmp_path):
    image, suffix, expected = cases()[mode]
    path = tmp_path / f"{mode.replace(';', '_')}{suffix}"
    image.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode == mode  # the file really holds this mode
    decoded = load_rgb(path)
    assert decoded.mode == "RGB" and decoded.size == (17, 12)
    assert np.abs(np.asarray(decoded, np.float64) - expected).max() <= 1, mode


def test_16bit_png_is_the_same_picture_as_8bit(tmp_path):
    """The issue's case: a 16-bit PNG came out almost white (mean 254.6 vs 137.6)."""
    Image.fromarray(GREY).save(tmp_path / "8.png")
    Image.fromarray(GREY.astype(np.uint16) * 257).save(tmp_path / "16.png")
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "16.png")), np.asarray(load_rgb(tmp_path / "8.png")))


def test_decompression_bomb_and_unreadable_files_raise_one_error(tmp_path, monkeypatch):
    Image.fromarray(RGB).save(tmp_path / "big.png")  # 17 x 12 = 204 pixels
    with pytest.raises(ImageDecodeError, match=r"17x12 = 204 pixels, over the limit of 100.*--max-pixels"):
        load_rgb(tmp_path / "big.png", max_pixels=100)
    assert load_rgb(tmp_path / "big.png", max_pixels=204).size == (17, 12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # PIL's own limit is the default
    with pytest.raises(ImageDecodeError, match="over the limit of 150"):
        load_rgb(tmp_path / "big.png")
    assert load_rgb(tmp_path / "big.png", max_pixels=0).size == (17, 12)  # 0: no limit (PIL's bypassed too)
    assert Image.MAX_IMAGE_PIXELS == 150  # ... and left as it was
    monkeypatch.setenv("VISIONGATES_MAX_PIXELS", "1000")
    assert load_rgb(tmp_path / "big.png").size == (17, 12)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageDecodeError, match="text.png' cannot be decoded"):
        load_rgb(tmp_path / "text.png")
    with pytest.raises(OSError, match="does not exist"):  # an OSError and a DataError: skip logic catches both
        load_rgb(tmp_path / "absent.png")
    assert issubclass(ImageDecodeError, DataError)


def _folder(root):
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    Image.fromarray(RNG.integers(0, 256, (40, 40, 4), dtype=np.uint8)).save(root / "a" / "rgba.png")
    Image.fromarray(GREY.astype(np.uint16) * 257).save(root / "b" / "grey16.png")
    Image.fromarray(RNG.integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(root / "a" / "bomb.png")
    (root / "b" / "notes.jpg").write_text("not a JPEG")


def test_dataset_skips_and_counts_bombs_and_unreadable_files(tmp_path, caplog):
    _folder(tmp_path)
    dataset = ImageFolderDataset(tmp_path, eval_transform(32), max_pixels=5000)
    assert len(dataset) == 10
    with caplog.at_level("WARNING"):
        images, labels, skipped = collate_skip([dataset[i] for i in range(len(dataset))])
    assert skipped == 2 and images.shape == (8, 3, 32, 32)
    assert "bomb.png" in caplog.text and "over the limit of 5,000" in caplog.text and "notes.jpg" in caplog.text


@pytest.mark.slow
def test_training_skips_and_counts_a_bomb(tmp_path, monkeypatch):
    """tools/train.py's loop over a folder holding a decompression bomb (PIL's limit set low), a text file, a
    16-bit PNG and an RGBA PNG: trains, and logs 2 skipped images per epoch (train) and the val split's."""
    from quick_train import train_run

    _folder(tmp_path / "data" / "train")
    _folder(tmp_path / "data" / "val")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    train_run(
        tmp_path / "run", model="cbam_resnet18", data=str(tmp_path / "data"), img_size=32, batch_size=4, warmup_epochs=0
    )
    rows = json.loads((tmp_path / "run" / "log.json").read_text())
    row = rows[-1] if isinstance(rows, list) else rows
    assert row["skipped"] == 2 and row["val_skipped"] == 2, row
    assert (tmp_path / "run" / "best.pth").is_file()
