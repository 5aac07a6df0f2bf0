"""Seeded, stratified index splits: the validation hold-out, quick-run subsets and cross-validation folds.

All use numpy's PCG64 generator, whose streams are identical on every platform, so the same seed and the same
labels give the same indices on every machine.
"""

import numpy as np


def _class_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` across classes in proportion to `counts` (largest remainder; ties go to the lower class)."""
    exact = counts * total / counts.sum()
    quotas = np.floor(exact).astype(np.int64)
    remainder = total - quotas.sum()
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[:remainder]] += 1
    return quotas


def stratified_split(labels: np.ndarray, holdout_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row indices, both sorted; the held-out part keeps the class proportions."""
    labels = np.asarray(labels)
    if not 0 <= holdout_size <= len(labels):
        raise ValueError(f"cannot hold out {holdout_size} of {len(labels)} rows")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    held_out = []
    for label, quota in zip(classes, _class_quotas(counts, holdout_size), strict=True):
        rows = np.flatnonzero(labels == label)
        held_out.append(rng.permutation(rows)[:quota])
    held_out = np.sort(np.concatenate(held_out)) if held_out else np.array([], dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out, assume_unique=True)
    return kept, held_out


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a class-proportional random subset of `size` rows."""
    return stratified_split(labels, min(size, len(labels)), seed)[1]


def stratified_folds(labels: np.ndarray, num_folds: int, seed: int) -> list[np.ndarray]:
    """`num_folds` sorted index arrays that partition the rows; every class is spread evenly over the folds."""
    labels = np.asarray(labels)
    if not 2 <= num_folds <= len(labels):
        raise ValueError(f"cannot make {num_folds} folds of {len(labels)} rows")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0  # carry the round-robin across classes so that fold sizes differ by at most one
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        fold_of[rows] = (offset + np.arange(len(rows))) % num_folds
        offset += len(rows)
    return [np.flatnonzero(fold_of == fold) for fold in range(num_folds)]
