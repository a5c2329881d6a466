"""MedMNIST names: the real PneumoniaMNIST file read by name byte for byte, where a name resolves,
and fetching the file once when it is missing (bytes served locally: no network, ever)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from data_helpers import (
    ARRAY_MD5,
    COUNTS,
    FILE_MD5,
    PNEUMONIA_NPZ,
    good_arrays,
    md5,
    needs_real_data,
    real_cfg,
    write_npz,
)

from medtune.trainables.data import (
    DataConfig,
    DataError,
    DatasetSplits,
    clear_memo,
    inspect_source,
    load_splits,
    medmnist,
)

pytestmark = pytest.mark.usefixtures("isolated_data")


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
    assert medmnist.MEDMNIST["pneumoniamnist"].md5 in str(err.value) \
        and str(data_dir / "pneumoniamnist.npz") in str(err.value)
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
