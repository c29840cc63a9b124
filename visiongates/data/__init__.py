"""Datasets and albumentations pipelines for visiongates' tools."""

from .datasets import DigitsDataset, ImageFolderDataset, collate_skip, sample_seed  # noqa: F401
from .samples import write_digit_pngs, write_sample_photos  # noqa: F401
from .transforms import eval_transform, train_transform  # noqa: F401
