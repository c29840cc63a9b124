"""The embedded coins set: exact labels, a held-out split, determinism and the cache."""

import json

import numpy as np
import pytest
from PIL import Image

from visiongates.data.coins_coco import build_coins_set, coin_cutouts, split_coins

pycocotools = pytest.importorskip("pycocotools.mask")


def test_coins_are_cut_out_whole():
    cutouts = coin_cutouts()
    assert len(cutouts) == 24
    for patch, mask in cutouts:
        assert patch.shape == mask.shape and mask.mean() > 0.7  # a filled disc covers ~78% of its box


def test_val_coins_are_held_out():
    train, val = set(split_coins("train")), set(split_coins("val"))
    assert len(train) == 18 and len(val) == 6 and not train & val


@pytest.mark.parametrize("layout", ["coins", "coco", "ade20k"])
def test_boxes_masks_and_semantic_maps_agree_exactly(tmp_path, layout):
    root = build_coins_set(tmp_path / "set", layout=layout, num_train=6, num_val=2, image_size=96)
    if layout == "coco":
        ann, images, labels, offset = "annotations/instances_train2017.json", "train2017", "semantic/train2017", 0
    elif layout == "ade20k":
        ann, images = "annotations/instances_train.json", "ADEChallengeData2016/images/training"
        labels, offset = "ADEChallengeData2016/annotations/training", 1
    else:
        ann, images, labels, offset = "annotations/instances_train.json", "train", "semantic/train", 0
    coco = json.loads((root / ann).read_text())
    assert len(coco["images"]) == 6 and coco["annotations"]
    for image in coco["images"]:
        stem = image["file_name"].rsplit(".", 1)[0]
        assert Image.open(root / images / image["file_name"]).size == (96, 96)
        semantic = np.asarray(Image.open(root / labels / f"{stem}.png"))
        union = np.zeros((96, 96), dtype=int)
        for a in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
            mask = pycocotools.decode(a["segmentation"]).astype(bool)
            rows, cols = np.nonzero(mask)
            assert a["bbox"] == [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
            assert a["area"] == mask.sum() and a["iscrowd"] == 0
            union += mask
        assert union.max() <= 1  # coins never overlap
        assert np.array_equal(semantic, union.astype(np.uint8) + offset)


def test_build_is_deterministic_and_cached(tmp_path):
    a = build_coins_set(tmp_path / "a", num_train=3, num_val=1, image_size=64, seed=5)
    b = build_coins_set(tmp_path / "b", num_train=3, num_val=1, image_size=64, seed=5)
    assert (a / "annotations/instances_train.json").read_text() == (b / "annotations/instances_train.json").read_text()
    stamp = (a / "spec.json").stat().st_mtime_ns
    build_coins_set(tmp_path / "a", num_train=3, num_val=1, image_size=64, seed=5)
    assert (a / "spec.json").stat().st_mtime_ns == stamp  # reused
    build_coins_set(tmp_path / "a", num_train=2, num_val=1, image_size=64, seed=5)
    assert len(json.loads((a / "annotations/instances_train.json").read_text())["images"]) == 2  # rebuilt
