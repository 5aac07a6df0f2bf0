"""Data: loading and checking datasets, seeded splits, decoded uint8 tensors and batched on-device augmentation.

The names below are imported on first use, so that reading the split defaults (command-line help) does not load
torch and datasets.
"""

import importlib

from .defaults import DEFAULT_DATASET, DEFAULT_SEED, DEFAULT_VAL_SIZE

_LAZY = {
    "BatchTransform": ".augment",
    "CifarData": ".loading",
    "ImageArrays": ".loading",
    "load_cifar": ".loading",
    "load_labelled_split": ".loading",
    "stratified_folds": ".splits",
    "stratified_split": ".splits",
    "stratified_subset": ".splits",
    "ImageTensorDataset": ".tensors",
    "collate_batch": ".tensors",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
