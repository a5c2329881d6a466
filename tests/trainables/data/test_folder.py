"""Kermany-layout folders: decoding, junk and corrupt files, a missing val split, and every broken
layout a DataError that names the folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import folder_cfg
from helpers import make_kermany
from PIL import Image

from medtune.trainables.data import DataError, inspect_source, load_splits

pytestmark = pytest.mark.usefixtures("isolated_data")


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
