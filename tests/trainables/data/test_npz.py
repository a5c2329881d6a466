"""MedMNIST-style .npz sources: RGB and flat labels accepted, val carved when absent, and every
malformed file a DataError that names the file and the array at fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import good_arrays, write_npz

from medtune.trainables.data import DataConfig, DataError, inspect_source, load_splits

pytestmark = pytest.mark.usefixtures("isolated_data")


def test_npz_rgb_and_flat_labels(tmp_path):
    arrays = good_arrays()
    rgb = np.stack([arrays["train_images"]] * 3, axis=-1)
    rgb[..., 0] = 255  # luminance weights: gray = 0.299*255 + 0.701*g
    arrays["train_images"] = rgb
    arrays["train_labels"] = arrays["train_labels"][:, 0]
    path = write_npz(tmp_path / "custom.npz", **arrays)
    s = load_splits(DataConfig(str(path), image_size=8, cache_dir=str(tmp_path / "c")))
    # Colour train images make the file colour: kept as they are, the grey splits repeated to RGB.
    assert s.colour and np.array_equal(s.train.images, rgb)
    assert np.array_equal(s.val.images, np.repeat(arrays["val_images"][..., None], 3, axis=-1))
    assert s.train.labels.shape == (10,) and s.class_names == ("0", "1")
    resized = load_splits(DataConfig(str(path), image_size=20, cache_dir=str(tmp_path / "c")))
    assert resized.val.images.shape == (4, 20, 20, 3)


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
    if case == "mixed_label_shapes":  # multi-label train, single-label val and test
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


@pytest.mark.parametrize("case", ["missing_keys", "mismatched", "empty", "mixed_label_shapes", "float_images",
                                  "bad_rank", "pickled", "not_a_zip", "label_out_of_range"])
def test_npz_bad_inputs(tmp_path, case):
    path, key = _bad_npz(tmp_path, case)
    for call in (inspect_source, load_splits):
        with pytest.raises(DataError) as err:
            call(DataConfig(str(path), image_size=8, cache_dir=str(tmp_path / "c")))
        assert str(path) in str(err.value) and key in str(err.value)
