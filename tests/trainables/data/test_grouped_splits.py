"""Grouped carving and folds (a manifest's group column): whole groups on one side, stratified,
seeded; and the ungrouped splits pinned to the bit, as they were before groups existed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from medtune.trainables.data import DataConfig, DataError
from medtune.trainables.data.splits import (
    SplitArrays,
    carve_val,
    kfold_indices,
    kfold_pairs,
    plan_indices,
    pooled,
    take,
)


def _digest(parts) -> str:
    return hashlib.sha256(b"".join(np.asarray(p, np.int64).tobytes() for p in parts)).hexdigest()[:16]


def test_ungrouped_carving_folds_and_plans_are_unchanged_to_the_bit():
    """Hashes taken from the splits before grouping was added: every existing split stays as it was."""
    labels = np.random.default_rng(7).integers(0, 3, 500)
    assert _digest(carve_val(labels, 0.15, 3, 3)) == "f886a4ce2f159e39"
    assert _digest(kfold_indices(labels, 5, 3)) == "f5c530877f1a59d6"
    cfg = DataConfig("x", val_fraction=0.2, split_seed=4, train_subset=100, val_subset=30)
    plan = plan_indices({"train": labels, "test": labels[:50]}, cfg, 3)
    assert _digest([plan[k][1] for k in ("train", "val", "test")]) == "2e99f1e1b4f44e43"


def _patients(n_groups: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and groups of 1-6 images per patient; a patient's images share its class."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_groups)
    classes = rng.integers(0, 3, n_groups)
    groups = np.repeat([f"p{i:03d}" for i in range(n_groups)], sizes)
    return np.repeat(classes, sizes), groups


@pytest.mark.parametrize("fraction", [0.1, 0.15, 0.3])
def test_grouped_carve_keeps_every_group_whole_near_the_fraction(fraction):
    labels, groups = _patients()
    train, val = carve_val(labels, fraction, 5, 3, groups=groups)
    assert not set(groups[train]) & set(groups[val])
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    per_class = np.bincount(labels, minlength=3)
    assert np.all(np.bincount(labels[train], minlength=3) >= 1)
    assert np.all(np.abs(np.bincount(labels[val], minlength=3) - fraction * per_class) <= 6)  # within a group
    again = carve_val(labels, fraction, 5, 3, groups=groups)
    assert np.array_equal(again[1], val) and not np.array_equal(carve_val(labels, fraction, 6, 3, groups=groups)[1],
                                                                val)


def test_grouped_carve_refuses_when_no_group_fits():
    labels = np.array([0, 0, 0, 1, 1, 1])
    with pytest.raises(DataError, match="group_column"):
        carve_val(labels, 0.1, 0, 2, groups=np.array(["a", "a", "a", "b", "b", "b"]))


def test_grouped_folds_hold_each_group_out_once():
    labels, groups = _patients(80)
    folds = kfold_indices(labels, 4, 2, groups=groups)
    held = np.concatenate(folds)
    assert np.array_equal(np.sort(held), np.arange(len(labels)))
    for i, fold in enumerate(folds):
        others = np.concatenate([f for j, f in enumerate(folds) if j != i])
        assert not set(groups[fold]) & set(groups[others])
    with pytest.raises(DataError, match="groups"):
        kfold_indices(labels[:8], 5, 0, groups=groups[:8])


def test_folds_of_pooled_splits_keep_groups_whole():
    labels, groups = _patients(80)
    images = np.zeros((len(labels), 4, 4, 1), np.uint8)
    train_idx, val_idx = carve_val(labels, 0.2, 0, 3, groups=groups)
    pool = pooled(take(images, labels, train_idx, groups), take(images, labels, val_idx, groups))
    assert pool.groups is not None and len(pool.groups) == len(labels)
    for train, held_out, _ in kfold_pairs(pool, 3, 1):
        assert not set(train.groups) & set(held_out.groups)
    plain = pooled(SplitArrays(images[:5], labels[:5]), SplitArrays(images[5:9], labels[5:9]))
    assert plain.groups is None
