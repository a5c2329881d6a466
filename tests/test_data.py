"""Data layer: sources, validation errors, decode-once cache, seeded splits. No network, ever."""

from __future__ import annotations

import dataclasses

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medtune.trainables.data import (
    DataConfig,
    DataError,
    DatasetSplits,
    cache_stats,
    clear_memo,
    inspect_source,
    load_splits,
    resolve_cache_dir,
    resolve_data_dir,
)
from medtune.trainables.data import medmnist
from medtune.trainables.data.cache import reset_cache_stats
from medtune.trainables.data.splits import carve_val, stratified_subset

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MEDTUNE_SHARED_DIR", REPO.parent / "shared"))
PNEUMONIA_NPZ = SHARED / "data" / "pneumoniamnist.npz"
FILE_MD5 = "19633919eb6007474c347cc93767c15f"
# From shared/data/README.md.
COUNTS = {"train": (1214, 3494), "val": (135, 389), "test": (234, 390)}
ARRAY_MD5 = {
    "train_images": "fa2767fba09e60260aca9b81a6630f51",
    "train_labels": "d9f1eeb28b2c175d9017f96c59e9e5dc",
    "val_images": "4dd19f4ec75245ba44323e8a1998cb06",
    "val_labels": "357537abb6b5275546872a5d40632297",
    "test_images": "326bee66db971f50a500cb5ab723aebb",
    "test_labels": "33fd18e6562ee16f5457151ba09fdce1",
}

needs_real_data = pytest.mark.skipif(not PNEUMONIA_NPZ.is_file(), reason=f"{PNEUMONIA_NPZ} not available")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Fresh memo, caches under tmp, and a network that always fails unless a test serves bytes."""
    clear_memo()
    reset_cache_stats()
    monkeypatch.setenv("MEDTUNE_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(tmp_path / "env-data"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("tests never use the network")

    monkeypatch.setattr(medmnist, "_urlopen", offline)
    yield
    clear_memo()


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> Path:
    """One cache dir shared by the real-data tests that do not test caching itself."""
    return tmp_path_factory.mktemp("real-cache")


def real_cfg(cache: Path, **kw) -> DataConfig:
    return DataConfig("pneumoniamnist", data_dir=str(PNEUMONIA_NPZ.parent), cache_dir=str(cache), **kw)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


SIZES = [(40, 30), (33, 50), (64, 64), (80, 45), (28, 28), (50, 70)]
EXTS = [".jpeg", ".png", ".jpg"]


def make_kermany(root: Path, per_class: int = 12, splits=("train", "val", "test"),
                 classes=("NORMAL", "PNEUMONIA")) -> Path:
    """Tiny Kermany-layout tree: varying sizes, L and RGB, jpeg/png; class 0 dark, class 1 bright."""
    rng = np.random.default_rng(0)
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                w, h = SIZES[i % len(SIZES)]
                base = 50 + 140 * c
                gray = np.clip(base + rng.integers(-20, 20, (h, w)), 0, 255).astype(np.uint8)
                img = Image.fromarray(gray)
                if i % 2:
                    img = Image.merge("RGB", [img, img, img])
                ext = EXTS[i % len(EXTS)]
                img.save(folder / f"{name.lower()}_{i:03d}{ext}")
    return root


@pytest.fixture(scope="module")
def kermany(tmp_path_factory) -> Path:
    return make_kermany(tmp_path_factory.mktemp("kermany") / "chest_xray")


def folder_cfg(root: Path, tmp_path: Path, **kw) -> DataConfig:
    kw.setdefault("image_size", 32)
    return DataConfig(str(root), cache_dir=str(tmp_path / "cache"), **kw)


def write_npz(path: Path, **arrays) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def good_arrays(n=(10, 4, 6), size=8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    out = {}
    for split, k in zip(("train", "val", "test"), n):
        out[f"{split}_images"] = rng.integers(0, 256, (k, size, size), dtype=np.uint8)
        out[f"{split}_labels"] = (np.arange(k) % 2).reshape(-1, 1).astype(np.uint8)
    return out


# ---------------------------------------------------------------- real PneumoniaMNIST


@needs_real_data
def test_pneumoniamnist_native_counts_dtypes_and_bytes(real_cache):
    before = md5(PNEUMONIA_NPZ.read_bytes())
    splits = load_splits(real_cfg(real_cache))
    assert before == FILE_MD5 == md5(PNEUMONIA_NPZ.read_bytes())
    assert isinstance(splits, DatasetSplits)
    assert splits.class_names == ("normal", "pneumonia") and splits.num_classes == 2
    for name, (normal, pneumonia) in COUNTS.items():
        part = getattr(splits, name)
        assert part.images.shape == (normal + pneumonia, 28, 28, 1)
        assert part.images.dtype == np.uint8 and part.labels.dtype == np.int64
        assert part.labels.shape == (normal + pneumonia,)
        assert np.bincount(part.labels).tolist() == [normal, pneumonia]
        # Decoding at native size must not alter a single byte.
        assert md5(np.ascontiguousarray(part.images[..., 0]).tobytes()) == ARRAY_MD5[f"{name}_images"]
        assert md5(part.labels.astype(np.uint8).reshape(-1, 1).tobytes()) == ARRAY_MD5[f"{name}_labels"]


@needs_real_data
def test_pneumoniamnist_inspect_is_cheap_summary(real_cache):
    summary = inspect_source(real_cfg(real_cache, val_fraction=0.1))
    assert summary["kind"] == "npz" and summary["class_names"] == ["normal", "pneumonia"]
    assert summary["totals"] == {"train": 4708, "val": 524, "test": 624}
    assert summary["counts"]["test"] == {"normal": 234, "pneumonia": 390}
    assert summary["val_from"] == "train"
    assert summary["planned"]["val"]["total"] == 471 and summary["planned"]["train"]["total"] == 4708 - 471
    assert summary["planned"]["test"]["total"] == 624
    assert cache_stats() == {"decodes": 0, "disk_hits": 0, "memo_hits": 0}  # nothing decoded


@needs_real_data
def test_pneumoniamnist_resized_64(real_cache):
    splits = load_splits(real_cfg(real_cache, image_size=64))
    assert splits.train.images.shape == (4708, 64, 64, 1)
    assert splits.test.images.shape == (624, 64, 64, 1)
    assert splits.train.images.dtype == np.uint8
    native = load_splits(real_cfg(real_cache))
    # Resampling keeps overall brightness; labels untouched.
    assert abs(float(splits.train.images[:200].mean()) - float(native.train.images[:200].mean())) < 2.0
    assert np.array_equal(splits.train.labels, native.train.labels)


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


@needs_real_data
def test_fingerprint_is_content_based(real_cache, tmp_path):
    a = load_splits(real_cfg(real_cache))
    clear_memo()
    b = load_splits(real_cfg(tmp_path / "other-cache"))
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 12
    assert load_splits(real_cfg(real_cache, image_size=32)).fingerprint != a.fingerprint
    assert load_splits(real_cfg(real_cache, split_seed=9)).fingerprint == a.fingerprint  # nothing sampled
    assert load_splits(real_cfg(real_cache, train_subset=100)).fingerprint != a.fingerprint


# ---------------------------------------------------------------- download (served locally)


class _Served(io.BytesIO):
    def __init__(self, payload: bytes, calls: list[str], url: str):
        super().__init__(payload)
        calls.append(url)


@needs_real_data
def test_download_when_missing_verifies_md5_and_renames(tmp_path, monkeypatch):
    payload = PNEUMONIA_NPZ.read_bytes()
    calls: list[str] = []
    monkeypatch.setattr(medmnist, "_urlopen", lambda url, timeout=None: _Served(payload, calls, url))
    # The shared file is a reconstruction (../shared/data/README.md) whose bytes differ from the
    # official file's, so the served bytes are declared with their own md5 for this test.
    official = medmnist.MEDMNIST["pneumoniamnist"]
    monkeypatch.setitem(medmnist.MEDMNIST, "pneumoniamnist", dataclasses.replace(
        official, files={**official.files, 28: (official.url, FILE_MD5)}))
    data_dir = tmp_path / "fresh" / "data"
    cfg = DataConfig("pneumoniamnist", data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"))
    splits = load_splits(cfg)
    assert calls == [medmnist.MEDMNIST["pneumoniamnist"].url]
    assert "zenodo.org/records/10519652" in calls[0]
    assert md5((data_dir / "pneumoniamnist.npz").read_bytes()) == FILE_MD5
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.endswith(".lock")) == ["pneumoniamnist.npz"]
    assert len(splits.train) == 4708
    clear_memo()
    load_splits(cfg)
    assert len(calls) == 1  # present now: no second download


def test_download_with_bad_md5_is_a_data_error(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(medmnist, "_urlopen", lambda url, timeout=None: _Served(b"not the file" * 100, calls, url))
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="md5") as err:
        load_splits(DataConfig("pneumoniamnist", data_dir=str(data_dir), cache_dir=str(tmp_path / "c")))
    assert medmnist.MEDMNIST["pneumoniamnist"].md5 in str(err.value) and str(data_dir / "pneumoniamnist.npz") in str(err.value)
    assert [p.name for p in data_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_offline_error_says_where_and_how(tmp_path):
    data_dir = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        inspect_source(DataConfig("pneumoniamnist", data_dir=str(data_dir)))
    msg = str(err.value)
    assert str(data_dir / "pneumoniamnist.npz") in msg and "MEDTUNE_DATA_DIR" in msg
    assert medmnist.MEDMNIST["pneumoniamnist"].url in msg


def test_medmnist_name_uses_env_data_dir(tmp_path, monkeypatch):
    write_npz(tmp_path / "pneumoniamnist.npz", **good_arrays())
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(tmp_path))
    summary = inspect_source(DataConfig("PneumoniaMNIST"))
    assert summary["path"] == str((tmp_path / "pneumoniamnist.npz").resolve())
    assert summary["class_names"] == ["normal", "pneumonia"]


def test_medmnist_plus_file_preferred_at_its_size(tmp_path):
    write_npz(tmp_path / "pneumoniamnist.npz", **good_arrays(size=28))
    write_npz(tmp_path / "pneumoniamnist_64.npz", **good_arrays(size=64))
    summary = inspect_source(DataConfig("pneumoniamnist", image_size=64, data_dir=str(tmp_path)))
    assert summary["path"].endswith("pneumoniamnist_64.npz") and summary["native_shape"]["train"] == [64, 64]
    assert inspect_source(DataConfig("pneumoniamnist", image_size=32, data_dir=str(tmp_path)))["path"].endswith(
        "pneumoniamnist.npz")


def test_resolve_dirs_precedence(tmp_path, monkeypatch):
    assert resolve_data_dir(str(tmp_path / "x")) == tmp_path / "x"
    assert resolve_data_dir() == tmp_path / "env-data"
    monkeypatch.delenv("MEDTUNE_DATA_DIR")
    assert resolve_data_dir().parts[-2:] == ("medtune", "data")
    assert resolve_cache_dir() == tmp_path / "env-cache"
    monkeypatch.delenv("MEDTUNE_CACHE_DIR")
    assert resolve_cache_dir(str(tmp_path / "y")) == tmp_path / "y"
    assert resolve_cache_dir().name == "medtune"


# ---------------------------------------------------------------- .npz files


def test_npz_rgb_and_flat_labels(tmp_path):
    arrays = good_arrays()
    rgb = np.stack([arrays["train_images"]] * 3, axis=-1)
    rgb[..., 0] = 255  # luminance weights: gray = 0.299*255 + 0.701*g
    arrays["train_images"] = rgb
    arrays["train_labels"] = arrays["train_labels"][:, 0]
    path = write_npz(tmp_path / "custom.npz", **arrays)
    s = load_splits(DataConfig(str(path), image_size=8, cache_dir=str(tmp_path / "c")))
    expected = np.rint(0.299 * 255 + 0.587 * rgb[..., 1].astype(float) + 0.114 * rgb[..., 2]).astype(np.uint8)
    assert np.abs(s.train.images[..., 0].astype(int) - expected).max() <= 1
    assert s.train.labels.shape == (10,) and s.class_names == ("0", "1")
    resized = load_splits(DataConfig(str(path), image_size=20, cache_dir=str(tmp_path / "c")))
    assert resized.val.images.shape == (4, 20, 20, 1)


def test_npz_without_val_needs_val_fraction(tmp_path):
    arrays = {k: v for k, v in good_arrays().items() if not k.startswith("val")}
    path = write_npz(tmp_path / "noval.npz", **arrays)
    with pytest.raises(DataError, match="val_fraction") as err:
        inspect_source(DataConfig(str(path)))
    assert str(path) in str(err.value)
    s = load_splits(DataConfig(str(path), image_size=8, val_fraction=0.2, cache_dir=str(tmp_path / "c")))
    assert len(s.train) + len(s.val) == 10 and len(s.val) == 2 and set(s.val.labels) == {0, 1}


def _bad_npz(tmp_path: Path, case: str) -> tuple[Path, str]:
    a = good_arrays()
    if case == "missing_keys":
        del a["test_labels"]
        return write_npz(tmp_path / "x.npz", **a), "test_labels"
    if case == "mismatched":
        a["train_labels"] = a["train_labels"][:7]
        return write_npz(tmp_path / "x.npz", **a), "train_labels"
    if case == "empty":
        a["test_images"], a["test_labels"] = a["test_images"][:0], a["test_labels"][:0]
        return write_npz(tmp_path / "x.npz", **a), "test_images"
    if case == "multilabel":
        a["train_labels"] = np.zeros((10, 3), np.uint8)
        return write_npz(tmp_path / "x.npz", **a), "train_labels"
    if case == "float_images":
        a["val_images"] = a["val_images"].astype(np.float32)
        return write_npz(tmp_path / "x.npz", **a), "val_images"
    if case == "bad_rank":
        a["test_images"] = a["test_images"].reshape(6, 1, 8, 8).repeat(2, axis=1)
        return write_npz(tmp_path / "x.npz", **a), "test_images"
    if case == "pickled":
        a["train_labels"] = np.array([object()] * 10, dtype=object)
        np.savez(tmp_path / "x.npz", **a)
        return tmp_path / "x.npz", "train_labels"
    if case == "not_a_zip":
        (tmp_path / "x.npz").write_bytes(b"garbage")
        return tmp_path / "x.npz", ".npz"
    if case == "label_out_of_range":
        a["test_labels"][0] = 7
        return write_npz(tmp_path / "pneumoniamnist_28.npz", **a), "label 7"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_keys", "mismatched", "empty", "multilabel", "float_images",
                                  "bad_rank", "pickled", "not_a_zip", "label_out_of_range"])
def test_npz_bad_inputs(tmp_path, case):
    path, key = _bad_npz(tmp_path, case)
    for call in (inspect_source, load_splits):
        with pytest.raises(DataError) as err:
            call(DataConfig(str(path), image_size=8, cache_dir=str(tmp_path / "c")))
        assert str(path) in str(err.value) and key in str(err.value)


def test_missing_and_wrong_kind_paths(tmp_path):
    missing = tmp_path / "nope" / "data.npz"
    with pytest.raises(DataError, match="does not exist") as err:
        inspect_source(DataConfig(str(missing)))
    assert str(missing) in str(err.value)
    with pytest.raises(DataError, match="pneumoniamnist"):
        load_splits(DataConfig("not-a-dataset"))
    txt = tmp_path / "labels.csv"
    txt.write_text("a,b")
    with pytest.raises(DataError, match=r"\.npz file or a Kermany") as err:
        inspect_source(DataConfig(str(txt)))
    assert str(txt) in str(err.value)


@pytest.mark.parametrize("kw", [dict(image_size=0), dict(val_fraction=1.0), dict(val_fraction=0), dict(train_subset=0),
                                dict(max_bad_fraction=2), dict(split_seed=1.5), dict(source="")])
def test_config_validation(kw):
    args = {"source": "pneumoniamnist", **kw}
    with pytest.raises(DataError, match=next(iter(kw))):
        DataConfig(**args)


def test_config_accepts_paths(tmp_path):
    cfg = DataConfig(tmp_path, cache_dir=tmp_path / "c")
    assert cfg.source == str(tmp_path) and cfg.cache_dir == str(tmp_path / "c")


# ---------------------------------------------------------------- Kermany folders


def test_kermany_load(kermany, tmp_path):
    s = load_splits(folder_cfg(kermany, tmp_path))
    assert s.class_names == ("NORMAL", "PNEUMONIA")
    for part in (s.train, s.val, s.test):
        assert part.images.shape == (24, 32, 32, 1) and part.images.dtype == np.uint8
        assert part.labels.dtype == np.int64 and np.bincount(part.labels).tolist() == [12, 12]
        # Class 0 was drawn dark and class 1 bright, in L and RGB files alike.
        means = part.images.reshape(24, -1).mean(axis=1)
        assert (means[part.labels == 0] < 90).all() and (means[part.labels == 1] > 150).all()
    summary = inspect_source(folder_cfg(kermany, tmp_path))
    assert summary["kind"] == "folder" and summary["class_names"] == ["NORMAL", "PNEUMONIA"]
    assert summary["counts"]["val"] == {"NORMAL": 12, "PNEUMONIA": 12}


def test_kermany_ignores_junk_files(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=3)
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\0junk")
    (root / "train" / "NORMAL" / "._normal_000.jpeg").write_bytes(b"\0junk")
    (root / "train" / "NORMAL" / "notes.txt").write_text("hi")
    (root / "__MACOSX").mkdir()
    (root / "test" / ".hidden").mkdir()
    s = load_splits(folder_cfg(root, tmp_path))
    assert len(s.train) == 6


def test_kermany_without_val_needs_val_fraction(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=10, splits=("train", "test"))
    for call in (inspect_source, load_splits):
        with pytest.raises(DataError, match="val_fraction") as err:
            call(folder_cfg(root, tmp_path))
        assert str(root) in str(err.value)
    s = load_splits(folder_cfg(root, tmp_path, val_fraction=0.2, split_seed=3))
    assert len(s.val) == 4 and np.bincount(s.val.labels).tolist() == [2, 2]
    assert len(s.train) == 16 and len(s.test) == 20


def test_kermany_val_fraction_ignores_official_val(kermany, tmp_path):
    s = load_splits(folder_cfg(kermany, tmp_path, val_fraction=0.25))
    assert len(s.val) == 6 and len(s.train) == 18 and len(s.test) == 24


def _corrupt(root: Path, n: int) -> list[str]:
    files = sorted((root / "train" / "PNEUMONIA").iterdir())[:n]
    for f in files:
        f.write_bytes(b"this is not a jpeg" * 10)
    return [f.name for f in files]


def test_kermany_corrupt_files_skipped_with_one_warning(tmp_path):
    root = make_kermany(tmp_path / "k")
    names = _corrupt(root, 2)
    with pytest.warns(UserWarning, match="2 of 72 images") as record:
        s = load_splits(folder_cfg(root, tmp_path, max_bad_fraction=0.05))
    assert len([w for w in record if "unreadable" in str(w.message)]) == 1
    assert all(n in str(record[0].message) for n in names)
    assert np.bincount(s.train.labels).tolist() == [12, 10] and len(s.test) == 24
    # The default 1% is exceeded by 2/72, also on a cache hit.
    with pytest.raises(DataError, match="max_bad_fraction") as err:
        load_splits(folder_cfg(root, tmp_path))
    assert names[0] in str(err.value)


def test_kermany_truncated_jpeg_counts_as_bad(tmp_path):
    root = make_kermany(tmp_path / "k")
    victim = root / "test" / "NORMAL" / "normal_000.jpeg"
    victim.write_bytes(victim.read_bytes()[:60])
    with pytest.warns(UserWarning, match="normal_000.jpeg"):
        s = load_splits(folder_cfg(root, tmp_path, max_bad_fraction=0.05))
    assert len(s.test) == 23


def test_kermany_many_corrupt_files(tmp_path):
    root = make_kermany(tmp_path / "k")
    _corrupt(root, 12)
    with pytest.raises(DataError, match="12 of 72 images") as err:
        load_splits(folder_cfg(root, tmp_path))
    assert "and 2 more" in str(err.value) and str(root) in str(err.value)
    with pytest.warns(UserWarning, match="and 2 more"):
        s = load_splits(folder_cfg(root, tmp_path, max_bad_fraction=0.5))
    assert np.bincount(s.train.labels, minlength=2).tolist() == [12, 0]


def _break_folder(root: Path, case: str) -> str:
    """Damage a fresh Kermany tree; return text the DataError must contain."""
    import shutil

    if case == "no_test":
        shutil.rmtree(root / "test")
        return "test/"
    if case == "unknown_class":
        (root / "test" / "COVID").mkdir()
        Image.new("L", (30, 30)).save(root / "test" / "COVID" / "a.jpeg")
        return "COVID"
    if case == "missing_class":
        shutil.rmtree(root / "val" / "PNEUMONIA")
        return str(root / "val")
    if case == "single_class":
        for split in ("train", "val", "test"):
            shutil.rmtree(root / split / "PNEUMONIA")
        return "at least 2"
    if case == "empty_split":
        for cls in ("NORMAL", "PNEUMONIA"):
            for f in (root / "test" / cls).iterdir():
                f.unlink()
        return str(root / "test")
    if case == "empty_train_class":
        for f in (root / "train" / "NORMAL").iterdir():
            f.unlink()
        return str(root / "train" / "NORMAL")
    if case == "loose_images":
        Image.new("L", (30, 30)).save(root / "train" / "stray.jpeg")
        return "stray.jpeg"
    if case == "no_class_folders":
        shutil.rmtree(root / "val")
        (root / "val").mkdir()
        return str(root / "val")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["no_test", "unknown_class", "missing_class", "single_class", "empty_split",
                                  "empty_train_class", "loose_images", "no_class_folders"])
def test_kermany_bad_layouts(tmp_path, case):
    root = make_kermany(tmp_path / "k", per_class=2)
    needle = _break_folder(root, case)
    for call in (inspect_source, load_splits):
        with pytest.raises(DataError) as err:
            call(folder_cfg(root, tmp_path))
        assert needle in str(err.value) and str(root) in str(err.value)


def test_nested_root_gets_a_hint(tmp_path):
    make_kermany(tmp_path / "outer" / "chest_xray", per_class=1)
    with pytest.raises(DataError, match="Did you mean") as err:
        inspect_source(folder_cfg(tmp_path / "outer", tmp_path))
    assert str(tmp_path / "outer" / "chest_xray") in str(err.value)


# ---------------------------------------------------------------- decode-once cache


def test_cache_hits_memo_then_disk_and_size_decodes_anew(kermany, tmp_path):
    cfg = folder_cfg(kermany, tmp_path)
    first = load_splits(cfg)
    assert cache_stats()["decodes"] == 1
    second = load_splits(cfg)
    assert cache_stats()["decodes"] == 1 and cache_stats()["memo_hits"] == 1
    clear_memo()
    third = load_splits(cfg)
    stats = cache_stats()
    assert stats["decodes"] == 1 and stats["disk_hits"] == 1
    assert isinstance(third.train.images, np.memmap) and not third.train.images.flags.writeable
    for a in (second, third):
        assert np.array_equal(a.train.images, first.train.images) and a.fingerprint == first.fingerprint
    load_splits(folder_cfg(kermany, tmp_path, image_size=16))
    assert cache_stats()["decodes"] == 2
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert len(entries) == 2 and all(e.startswith("chest_xray-") for e in entries)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]
    assert {p.name for p in (tmp_path / "cache" / entries[0]).iterdir()} >= {"meta.json", "train_images.npy"}


@needs_real_data
def test_npz_cache_and_env_cache_dir(tmp_path):
    cfg = DataConfig("pneumoniamnist", data_dir=str(PNEUMONIA_NPZ.parent))  # cache_dir from MEDTUNE_CACHE_DIR
    load_splits(cfg)
    clear_memo()
    load_splits(cfg)
    assert cache_stats()["decodes"] == 1 and cache_stats()["disk_hits"] == 1
    assert any((tmp_path / "env-cache").glob("pneumoniamnist-28px-*/meta.json"))


def test_changed_source_invalidates_cache(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=3)
    cfg = folder_cfg(root, tmp_path)
    load_splits(cfg)
    Image.new("L", (40, 40), 200).save(root / "train" / "NORMAL" / "extra.png")
    s = load_splits(cfg)
    assert cache_stats()["decodes"] == 2 and len(s.train) == 7


def test_broken_cache_entry_is_rebuilt(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=3)
    cfg = folder_cfg(root, tmp_path)
    load_splits(cfg)
    entry = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    (entry / "test_images.npy").unlink()
    clear_memo()
    s = load_splits(cfg)
    assert cache_stats()["decodes"] == 2 and len(s.test) == 6


def test_concurrent_processes_decode_once(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=20)
    script = textwrap.dedent(f"""
        import json
        from medtune.trainables.data import DataConfig, load_splits, cache_stats
        s = load_splits(DataConfig({str(root)!r}, image_size=48, cache_dir={str(tmp_path / 'cache')!r}))
        print(json.dumps([cache_stats()["decodes"], s.fingerprint]))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, cwd=REPO) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert sorted(r[0] for r in results) == [0, 1] and results[0][1] == results[1][1]
