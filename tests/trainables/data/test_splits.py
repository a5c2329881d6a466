"""Seeded, stratified index ops: carving val out of train, and subsampling train and val."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import COUNTS, needs_real_data, real_cfg

from medtune.trainables.data import DataError, load_splits
from medtune.trainables.data.splits import carve_val, stratified_subset

pytestmark = pytest.mark.usefixtures("isolated_data")


def _rows(images: np.ndarray) -> list[bytes]:
    return sorted(bytes(r) for r in images.reshape(len(images), -1))


@needs_real_data
def test_val_carve_is_stratified_seeded_disjoint_and_leaves_test(real_cache):
    native = load_splits(real_cfg(real_cache))
    a = load_splits(real_cfg(real_cache, val_fraction=0.1, split_seed=0))
    b = load_splits(real_cfg(real_cache, val_fraction=0.1, split_seed=0))
    c = load_splits(real_cfg(real_cache, val_fraction=0.1, split_seed=1))
    n_train = len(native.train)
    assert len(a.val) == round(0.1 * n_train) and len(a.train) + len(a.val) == n_train
    for cls, count in enumerate(COUNTS["train"]):
        assert abs(int((a.val.labels == cls).sum()) - 0.1 * count) <= 1
    # Carved train + val is exactly the source train (as a multiset of images), source val ignored.
    assert _rows(np.concatenate([a.train.images, a.val.images])) == _rows(np.asarray(native.train.images))
    assert np.array_equal(a.val.images, b.val.images) and np.array_equal(a.train.labels, b.train.labels)
    assert not np.array_equal(a.val.images, c.val.images)
    assert np.array_equal(a.test.images, native.test.images) and np.array_equal(a.test.labels, native.test.labels)
    assert a.fingerprint == b.fingerprint != c.fingerprint != native.fingerprint


def test_carve_indices_disjoint_cover_and_seeded():
    labels = np.array([0] * 30 + [1] * 70 + [2] * 7)
    tr, va = carve_val(labels, 0.2, seed=3, num_classes=3)
    assert len(np.intersect1d(tr, va)) == 0 and np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(107))
    assert [int((labels[va] == k).sum()) for k in range(3)] in ([6, 14, 1], [6, 14, 2], [6, 15, 1])
    tr2, va2 = carve_val(labels, 0.2, seed=3, num_classes=3)
    assert np.array_equal(va, va2)
    assert not np.array_equal(va, carve_val(labels, 0.2, seed=4, num_classes=3)[1])
    # Every class keeps at least one training row, even a singleton.
    tr, va = carve_val(np.array([0, 0, 0, 0, 1]), 0.5, seed=0, num_classes=2)
    assert 4 in tr
    with pytest.raises(DataError, match="val_fraction"):
        carve_val(np.array([0, 1]), 0.1, seed=0, num_classes=2)
    assert len(carve_val(labels, 0.2, seed=-1, num_classes=3)[1]) == 21  # negative seeds wrap, not crash


def test_stratified_subset_keeps_rare_classes():
    labels = np.array([0] * 95 + [1] * 5)
    idx = stratified_subset(labels, 10, seed=0, num_classes=2)
    assert len(idx) == 10 and np.bincount(labels[idx]).tolist() == [9, 1]
    assert np.array_equal(idx, np.sort(idx))
    assert np.array_equal(stratified_subset(labels, 500, seed=0, num_classes=2), np.arange(100))


@needs_real_data
def test_train_and_val_subsets_are_stratified_and_seeded(real_cache):
    s = load_splits(real_cfg(real_cache, train_subset=500, val_subset=100))
    assert len(s.train) == 500 and len(s.val) == 100 and len(s.test) == 624
    normal_share = COUNTS["train"][0] / sum(COUNTS["train"])
    assert abs(int((s.train.labels == 0).sum()) - 500 * normal_share) <= 1
    assert abs(int((s.val.labels == 0).sum()) - 100 * COUNTS["val"][0] / sum(COUNTS["val"])) <= 1
    again = load_splits(real_cfg(real_cache, train_subset=500, val_subset=100))
    assert np.array_equal(s.train.images, again.train.images)
    other = load_splits(real_cfg(real_cache, train_subset=500, val_subset=100, split_seed=5))
    assert not np.array_equal(s.train.images, other.train.images)
    # Subset of a carved val: carve first, then subsample the rest of train.
    carved = load_splits(real_cfg(real_cache, val_fraction=0.2, train_subset=300))
    assert len(carved.train) == 300 and len(carved.val) == round(0.2 * 4708)
