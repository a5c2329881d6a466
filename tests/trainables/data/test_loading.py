"""The entry points: ``inspect_source`` summarises without decoding, ``load_splits`` fingerprints
the splits by content, and a source that is neither a MedMNIST name, an .npz nor a folder is an error."""

from __future__ import annotations

import pytest
from data_helpers import needs_real_data, real_cfg

from medtune.trainables.data import DataConfig, DataError, cache_stats, clear_memo, inspect_source, load_splits

pytestmark = pytest.mark.usefixtures("isolated_data")


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
def test_fingerprint_is_content_based(real_cache, tmp_path):
    a = load_splits(real_cfg(real_cache))
    clear_memo()
    b = load_splits(real_cfg(tmp_path / "other-cache"))
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 12
    assert load_splits(real_cfg(real_cache, image_size=32)).fingerprint != a.fingerprint
    assert load_splits(real_cfg(real_cache, split_seed=9)).fingerprint == a.fingerprint  # nothing sampled
    assert load_splits(real_cfg(real_cache, train_subset=100)).fingerprint != a.fingerprint


def test_missing_and_wrong_kind_paths(tmp_path):
    missing = tmp_path / "nope" / "data.npz"
    with pytest.raises(DataError, match="does not exist") as err:
        inspect_source(DataConfig(str(missing)))
    assert str(missing) in str(err.value)
    with pytest.raises(DataError, match="pneumoniamnist"):
        load_splits(DataConfig("not-a-dataset"))
    txt = tmp_path / "labels.txt"
    txt.write_text("a,b")
    with pytest.raises(DataError, match=r"\.npz file, a \.csv manifest or a Kermany") as err:
        inspect_source(DataConfig(str(txt)))
    assert str(txt) in str(err.value)
    csv = tmp_path / "labels.csv"  # a .csv is a manifest: it needs its columns named
    csv.write_text("a,b")
    with pytest.raises(DataError, match=r"needs data\.path_column"):
        inspect_source(DataConfig(str(csv)))
