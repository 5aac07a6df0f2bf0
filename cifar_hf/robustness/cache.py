"""Corrupted splits cached on disk next to the decoded data, so a second model is scored without recomputing them."""

import hashlib
import os
import tempfile
from pathlib import Path

import datasets
import numpy as np

from .corruptions import corrupt

CACHE_VERSION = "1"  # bump when a corruption's definition changes: old entries then stop matching


def cache_folder() -> Path:
    return Path(datasets.config.HF_DATASETS_CACHE) / "cifar_hf-corruptions"


def cache_key(pixels: np.ndarray, name: str, severity: int, seed: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes())
    digest.update(f"{pixels.shape}/{name}/{severity}/{seed}/{CACHE_VERSION}".encode())
    return digest.hexdigest()[:32]


def cached_corruption(pixels: np.ndarray, name: str, severity: int, seed: int) -> tuple[np.ndarray, bool]:
    """(corrupted pixels, whether they came from the cache)."""
    path = cache_folder() / f"{name}-s{severity}-{cache_key(pixels, name, severity, seed)}.npy"
    if path.is_file():
        return np.load(path), True
    corrupted = corrupt(pixels, name, severity, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy.tmp", delete=False) as tmp:
        np.save(tmp, corrupted)
    os.replace(tmp.name, path)  # whole files only: a concurrent or killed run never leaves half an array
    return corrupted, False
