"""Data: loading and checking datasets, seeded splits, decoded uint8 tensors and batched on-device augmentation."""

from .augment import BatchTransform
from .loading import (
    DEFAULT_DATASET,
    DEFAULT_SEED,
    DEFAULT_VAL_SIZE,
    CifarData,
    ImageArrays,
    load_cifar,
    load_labelled_split,
)
from .splits import stratified_folds, stratified_split, stratified_subset
from .tensors import ImageTensorDataset, collate_batch

__all__ = [
    "DEFAULT_DATASET",
    "DEFAULT_SEED",
    "DEFAULT_VAL_SIZE",
    "BatchTransform",
    "CifarData",
    "ImageArrays",
    "ImageTensorDataset",
    "collate_batch",
    "load_cifar",
    "load_labelled_split",
    "stratified_folds",
    "stratified_split",
    "stratified_subset",
]
