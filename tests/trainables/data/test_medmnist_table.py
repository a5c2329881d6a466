"""The MedMNIST 2D family by name, with metadata from the ``medmnist`` package."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from medtune.trainables.data import DataConfig, inspect_source, medmnist
from medtune.trainables.data.errors import DataError
from medtune.trainables.data.medmnist import MEDMNIST, is_medmnist_name, parse_medmnist_name
from medtune.trainables.data.medmnist_table import DATASETS_2D, MEDMNIST_TABLE, render, table_from_info

TWELVE = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
          "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist")


def test_the_table_is_the_medmnist_packages_own_metadata():
    info = pytest.importorskip("medmnist").INFO  # a test dependency (pyproject's test extra)
    assert table_from_info(info) == MEDMNIST_TABLE
    generated = Path(medmnist.__file__).with_name("_medmnist_table_data.py")
    assert generated.read_text() == render(info)  # generated, not edited by hand


def test_every_2d_dataset_is_known_by_name_and_size():
    assert set(DATASETS_2D) == set(TWELVE)
    for name in TWELVE:
        assert is_medmnist_name(name) and is_medmnist_name(name.upper())
        for size in (64, 128, 224):
            info, parsed = parse_medmnist_name(f"{name}_{size}")
            assert info.name == name and parsed == size \
                and info.files[size][0].endswith(f"{name}_{size}.npz?download=1")
    assert not is_medmnist_name("dermamnist_100") and not is_medmnist_name("organmnist3d") and not is_medmnist_name("x")
    # label names from the package, in label order
    assert MEDMNIST["breastmnist"].class_names == ("malignant", "normal, benign")
    assert MEDMNIST["pneumoniamnist"].class_names == ("normal", "pneumonia")
    assert len(MEDMNIST["dermamnist"].class_names) == 7 and MEDMNIST["retinamnist"].task == "ordinal-regression"


def test_chestmnist_is_read_as_multi_label_with_its_findings(tmp_path, monkeypatch):
    """No longer refused: offline, the error is the download's, naming the file, not the task."""
    def refuse(url, timeout=None):
        raise OSError("no network")

    monkeypatch.setattr(medmnist, "_urlopen", refuse)
    with pytest.raises(DataError) as err:
        inspect_source(DataConfig("chestmnist", data_dir=str(tmp_path)))
    assert "chestmnist.npz" in str(err.value) and "multi-label" not in str(err.value)
    assert medmnist.is_multilabel(MEDMNIST["chestmnist"])


def test_offline_a_medmnist_plus_name_says_which_file_to_put_where(tmp_path, monkeypatch):
    def refuse(url, timeout=None):
        raise OSError("no network")

    monkeypatch.setattr(medmnist, "_urlopen", refuse)
    with pytest.raises(DataError) as err:
        inspect_source(DataConfig("dermamnist_64", image_size=64, data_dir=str(tmp_path)))
    url, md5 = MEDMNIST["dermamnist"].files[64]
    message = str(err.value)
    assert str(tmp_path / "dermamnist_64.npz") in message and url in message and md5 in message
    assert "MEDTUNE_DATA_DIR" in message


def test_a_medmnist_plus_file_is_downloaded_checked_and_named_by_the_package(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 21), ("val", 14), ("test", 14)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)  # RGB, like DermaMNIST
        arrays[f"{split}_labels"] = (np.arange(n) % 7).reshape(-1, 1).astype(np.uint8)  # (N, 1), like MedMNIST
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    payload = buffer.getvalue()
    official = MEDMNIST["dermamnist"]
    monkeypatch.setitem(MEDMNIST, "dermamnist", dataclasses.replace(
        official, files={**official.files, 64: (official.files[64][0], hashlib.md5(payload).hexdigest())}))
    asked: list[str] = []

    def serve(url, timeout=None):
        asked.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(medmnist, "_urlopen", serve)
    summary = inspect_source(DataConfig("dermamnist_64", image_size=64, data_dir=str(tmp_path)))
    assert asked == [official.files[64][0]]
    assert summary["path"] == str((tmp_path / "dermamnist_64.npz").resolve())
    assert summary["class_names"] == list(official.class_names) and summary["num_classes"] == 7
    assert summary["totals"] == {"train": 21, "val": 14, "test": 14}
