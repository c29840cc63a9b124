"""mmdet / mmseg datasets over the embedded coins set (visiongates.data.coins_coco), generated on first use."""

from __future__ import annotations

import os
from typing import Any

from mmdet.datasets import CocoDataset
from mmseg.datasets import BaseSegDataset

from visiongates.data.coins_coco import CLASSES, build_coins_set

from .registry import register_dataset


def ensure_coins(data_root: str, coins_spec: dict[str, Any] | None) -> str:
    """Expand `~` in `data_root`, build the coins set there if it is missing or differs from the spec."""
    root = os.path.expanduser(data_root)
    build_coins_set(root, **(coins_spec or {}))
    return root.rstrip("/") + "/"


@register_dataset(scope="mmdet")
class CoinsCocoDataset(CocoDataset):
    """COCO-format instances of the coins set (one class, 'coin'); `coins_spec` as `CoinsSpec`'s fields."""

    METAINFO = {"classes": CLASSES, "palette": [(220, 20, 60)]}

    def __init__(self, *args: Any, data_root: str = "", coins_spec: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, data_root=ensure_coins(data_root, coins_spec), **kwargs)


@register_dataset(scope="mmseg")
class CoinsSegDataset(BaseSegDataset):
    """Semantic maps of the coins set: 0 background, 1 coin."""

    METAINFO = {"classes": ("background", *CLASSES), "palette": [(0, 0, 0), (220, 20, 60)]}

    def __init__(self, *args: Any, data_root: str = "", coins_spec: dict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("img_suffix", ".jpg")
        kwargs.setdefault("seg_map_suffix", ".png")
        super().__init__(*args, data_root=ensure_coins(data_root, coins_spec), **kwargs)
