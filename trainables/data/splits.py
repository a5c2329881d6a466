"""The arrays a trial gets, and the seeded, stratified index ops that carve and subsample them.

With groups (a CSV manifest's ``group_column``: a patient or study ID) every carved split is
grouped: a carved val and each cross-validation fold take whole groups, so no patient's images
are on both sides. Without groups the carving is the ungrouped one, unchanged to the bit.

Multi-label labels ((N, L) 0/1 findings) are stratified on one derived key per row
(``stratum_key``): the row's rarest finding (by its count in the labels being carved), or "no
finding" (key L) when it has none. Every carving here then works unchanged on the key, and each
finding, the rare ones first, is spread over the carved splits in proportion; iterative
multi-label stratification would balance co-occurrences too, at a cost and a dependency this
does not need for a val split or a few folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .colour import channels_of
from .config import DataConfig
from .errors import DataError


def stratum_key(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, int]:
    """(one stratum per row, number of strata): the class itself for (N,) labels; for (N, L) 0/1
    findings the row's rarest finding (ties: the lower index), or L when it has none."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim == 1:
        return labels, num_classes
    width = labels.shape[1]
    if not len(labels):
        return np.zeros(0, dtype=np.int64), width + 1
    rarity = np.argsort(np.argsort(labels.sum(axis=0), kind="stable"), kind="stable")  # 0 = rarest finding
    ranked = np.where(labels > 0, rarity[None, :], width)
    rarest = np.argmin(ranked, axis=1)
    return np.where(labels.any(axis=1), rarest, width).astype(np.int64), width + 1


@dataclass
class SplitArrays:
    """One split: images uint8 (N, H, W, C) and labels int64 (N,), C = 1 (grey) or 3 (colour, RGB);
    multi-label data has labels (N, L) of 0/1 findings.
    Images may be a read-only memmap.
    ``groups``: each row's patient or study ID when the source has them (folds keep them whole)."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        """1 for grey images, 3 for colour ones (the source's mode, ``colour.py``)."""
        return channels_of(self.images)


@dataclass
class DatasetSplits:
    """train/val/test plus what MLflow and the model head need to know about them."""

    train: SplitArrays
    val: SplitArrays
    test: SplitArrays
    class_names: tuple[str, ...]
    fingerprint: str
    #: How many of the source's images are colour (``colour.py``), when the data was decoded here.
    colour_images: int | None = None

    @property
    def num_classes(self) -> int:
        """The classes, or the findings of multi-label data (the model's outputs either way)."""
        return len(self.class_names)

    @property
    def multilabel(self) -> bool:
        """Whether each image has any number of 0/1 findings (labels (N, L)) rather than one class."""
        return self.train.labels.ndim == 2

    @property
    def channels(self) -> int:
        """The data's mode, read off its arrays: 3 when the source is colour, 1 when it is grey."""
        return self.train.channels

    @property
    def colour(self) -> bool:
        return self.channels == 3


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Spread `total` over classes in proportion to `counts` (largest remainder), >= 1 per class when possible."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(min(max(total, 0), counts.sum()))
    if total == 0:
        return np.zeros_like(counts)
    quotas = counts * (total / counts.sum())
    alloc = np.floor(quotas).astype(np.int64)
    order = np.argsort(-(quotas - alloc), kind="stable")
    alloc[order[: total - alloc.sum()]] += 1
    # Small totals could leave a rare class out entirely; borrow from the largest share.
    while True:
        starved = np.flatnonzero((alloc == 0) & (counts > 0))
        donors = np.flatnonzero(alloc > 1)
        if not len(starved) or not len(donors):
            return alloc
        alloc[donors[np.argmax(alloc[donors])]] -= 1
        alloc[starved[0]] += 1


def _seed(seed: int) -> int:
    """numpy seeds must be >= 0; wrap negatives (two's complement) instead of failing a trial."""
    return seed & 0xFFFFFFFFFFFFFFFF


def _per_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in range(num_classes)]


def carve_val(labels: np.ndarray, fraction: float, seed: int, num_classes: int,
              groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a stratified `fraction` of the rows for val, seeded by default_rng(seed).

    Each class gives round-ish fraction of its rows (largest remainder keeps every class within
    one image of exact proportion) and always keeps at least one row in train. With ``groups``
    val takes whole groups (``carve_grouped``).
    """
    labels, num_classes = stratum_key(labels, num_classes)
    if groups is not None:
        return carve_grouped(labels, fraction, seed, num_classes, groups)
    members = _per_class(labels, num_classes)
    counts = np.array([len(m) for m in members])
    want = _allocate(counts, round(fraction * len(labels)))
    want = np.minimum(want, np.maximum(counts - 1, 0))
    if want.sum() == 0:
        raise DataError(f"val_fraction={fraction}: carving from {len(labels)} train images leaves val empty; "
                        "expected a larger val_fraction or more training images")
    rng = np.random.default_rng(_seed(seed))
    val = np.concatenate([rng.permutation(m)[:k] for m, k in zip(members, want)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def carve_grouped(labels: np.ndarray, fraction: float, seed: int, num_classes: int,
                  groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) with every group wholly on one side, val's class counts near ``fraction``.

    Greedy, seeded: groups in a random order, the largest first (they are the hardest to place), each
    goes to val when that brings val's per-class counts closer (squared error) to ``fraction`` of
    each class, and never when it would take a class's last rows out of train. Any fraction works
    (a k-fold splitter offers only 1/k), and val lands within about one group of the target.
    """
    labels = np.asarray(labels, dtype=np.int64)
    _, group_of = np.unique(np.asarray(groups), return_inverse=True)
    counts = np.zeros((int(group_of.max(initial=-1)) + 1, num_classes), dtype=np.int64)
    np.add.at(counts, (group_of, labels), 1)
    totals = counts.sum(axis=0)
    target = fraction * totals
    order = np.random.default_rng(_seed(seed)).permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    val = np.zeros(num_classes, dtype=np.int64)
    in_val = np.zeros(len(counts), dtype=bool)
    for g in order:
        new = val + counts[g]
        closer = ((new - target) ** 2).sum() < ((val - target) ** 2).sum()
        if closer and np.all(totals - new >= (totals > 0)):
            val, in_val[g] = new, True
    if not in_val.any():
        raise DataError(f"val_fraction={fraction}: carving whole groups (data.group_column) from {len(labels)} train "
                        f"images in {len(counts)} groups leaves val empty; expected a larger val_fraction or more, "
                        "smaller groups")
    mask = in_val[group_of]
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def stratified_subset(labels: np.ndarray, size: int, seed: int | list[int], num_classes: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded subsample of `size` rows (all rows if size >= N)."""
    if size >= len(labels):
        return np.arange(len(labels))
    labels, num_classes = stratum_key(labels, num_classes)
    members = _per_class(labels, num_classes)
    want = _allocate(np.array([len(m) for m in members]), size)
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.permutation(m)[:k] for m, k in zip(members, want)])
    return np.sort(picked)


def plan_indices(labels: dict[str, np.ndarray], cfg: DataConfig, num_classes: int,
                 groups: dict[str, np.ndarray] | None = None) -> dict[str, tuple[str, np.ndarray]]:
    """For each output split: (source split it reads, row indices). Pure index math on labels.

    Shared by load_splits and inspect_source so `medtune validate` reports exactly the counts
    trials will see. Subsets use their own seed streams so changing one never moves another.
    ``groups`` (split -> each row's group) makes the carved val grouped.
    """
    test = ("test", np.arange(len(labels["test"])))
    if cfg.val_fraction is not None:
        train_idx, val_idx = carve_val(labels["train"], cfg.val_fraction, cfg.split_seed, num_classes,
                                       groups=None if groups is None else groups["train"])
        train, val = ("train", train_idx), ("train", val_idx)
    else:
        train, val = ("train", np.arange(len(labels["train"]))), ("val", np.arange(len(labels["val"])))
    for name, subset, stream in (("train", cfg.train_subset, 1), ("val", cfg.val_subset, 2)):
        if subset is None:
            continue
        src, idx = train if name == "train" else val
        keep = stratified_subset(labels[src][idx], subset, [_seed(cfg.split_seed), stream], num_classes)
        if name == "train":
            train = (src, idx[keep])
        else:
            val = (src, idx[keep])
    return {"train": train, "val": val, "test": test}


def take(images: np.ndarray, labels: np.ndarray, idx: np.ndarray, groups: np.ndarray | None = None) -> SplitArrays:
    """Rows `idx` of a split. Images are not copied when idx is all rows in order (keeps the
    memmap shared); labels are always a fresh array, so callers cannot corrupt the cache memo."""
    labels_out = np.array(labels[idx], dtype=np.int64)  # (n,) or (n, L): a fresh copy either way
    groups_out = None if groups is None else np.asarray(groups)[idx]
    if len(idx) == len(labels) and np.array_equal(idx, np.arange(len(labels))):
        return SplitArrays(images=images, labels=labels_out, groups=groups_out)
    return SplitArrays(images=images[idx], labels=labels_out, groups=groups_out)


def pooled(first: SplitArrays, second: SplitArrays) -> SplitArrays:
    """Two splits as one (train + val, for cross-validation on a small data set); groups kept when both have them."""
    groups = None
    if first.groups is not None and second.groups is not None:
        groups = np.concatenate([first.groups, second.groups])
    return SplitArrays(images=np.concatenate([np.asarray(first.images), np.asarray(second.images)]),
                       labels=np.concatenate([first.labels, second.labels]).astype(np.int64), groups=groups)


def kfold_indices(labels: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """The held-out rows of each of ``folds`` stratified, seeded folds (scikit-learn's StratifiedKFold).

    Every row is held out exactly once, so the folds' predictions together are out-of-fold
    predictions for the whole pool. A class with fewer rows than folds cannot be spread over
    them: that is a ``DataError`` naming the class count, not scikit-learn's warning. With
    ``groups`` the folds are StratifiedGroupKFold's: each group held out whole, in one fold.
    """
    from sklearn.model_selection import StratifiedKFold

    if np.ndim(labels) == 2:  # multi-label: one stratum per row; strata too rare to spread join the largest
        labels, _ = stratum_key(labels, 0)
        counts = np.bincount(labels)
        labels = np.where(counts[labels] < folds, int(np.argmax(counts)), labels)
    if groups is not None:
        return _group_kfold_indices(labels, folds, seed, groups)

    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    present = counts[counts > 0]
    if len(present) < 2:
        raise DataError(f"cross-validation needs at least two classes in train + val, found {len(present)}")
    if present.min() < folds:
        raise DataError(f"search.cv={folds}: the smallest class has {int(present.min())} images in train + val, "
                        f"fewer than the {folds} folds; expected cv <= {int(present.min())}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=_seed(seed) % 2**32)
    return [held_out for _, held_out in splitter.split(np.zeros(len(labels)), labels)]


def _group_kfold_indices(labels: np.ndarray, folds: int, seed: int, groups: np.ndarray) -> list[np.ndarray]:
    """Stratified folds of whole groups (scikit-learn's StratifiedGroupKFold, shuffled by ``seed``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels, dtype=np.int64)
    per_class = {int(c): len(np.unique(np.asarray(groups)[labels == c])) for c in np.unique(labels)}
    if len(per_class) < 2:
        raise DataError(f"cross-validation needs at least two classes in train + val, found {len(per_class)}")
    fewest = min(per_class.values())
    if fewest < folds:
        raise DataError(f"search.cv={folds}: the rarest class is in {fewest} groups (data.group_column) of train + "
                        f"val, fewer than the {folds} folds that hold whole groups out; expected cv <= {fewest}")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=_seed(seed) % 2**32)
    return [held_out for _, held_out in splitter.split(np.zeros(len(labels)), labels, np.asarray(groups))]


def kfold_pairs(pool: SplitArrays, folds: int, seed: int) -> list[tuple[SplitArrays, SplitArrays, np.ndarray]]:
    """(train, held-out, held-out rows of the pool) for each fold of ``pool``; grouped when it has groups."""
    pairs = []
    for held_out in kfold_indices(pool.labels, folds, seed, groups=pool.groups):
        mask = np.ones(len(pool.labels), dtype=bool)
        mask[held_out] = False
        pairs.append((take(pool.images, pool.labels, np.flatnonzero(mask), pool.groups),
                      take(pool.images, pool.labels, held_out, pool.groups), held_out))
    return pairs
