"""Datasets and albumentations pipelines for visiongates' tools."""

from .datasets import (  # noqa: F401
    DigitsDataset,
    ImageFolderDataset,
    build_dataset,
    class_folders,
    collate_skip,
    image_files,
    sample_seed,
)
from .samples import write_digit_pngs, write_sample_photos  # noqa: F401
from .transforms import eval_transform, train_transform  # noqa: F401
