"""What the data-layer tests share: the real PneumoniaMNIST file's known counts and checksums,
small .npz arrays, and the configs that point a test at a source and a cache under its tmp folder.

The Kermany-layout tree builder, ``make_kermany``, is in ``tests/helpers.py``: tests outside
this folder build such trees too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

from medtune.trainables.data import DataConfig

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


def real_cfg(cache: Path, **kw) -> DataConfig:
    return DataConfig("pneumoniamnist", data_dir=str(PNEUMONIA_NPZ.parent), cache_dir=str(cache), **kw)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


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
