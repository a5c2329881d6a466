"""Leakage and shortcut checks: built folders with known copies, re-encodings and a storage-mode
shortcut; the checks read the decode cache only; ``on_leak: drop``; the near-copy thresholds; and
the real brain-MRI set's 216 test copies and its RGB/L storage modes (slow)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from data_helpers import SHARED, folder_cfg
from helpers import make_kermany
from leak_cases import BYTE_COPIES, REENCODED, RESAVED, blob, make_leaky_folder
from PIL import Image
from pydicom.data import get_testdata_file

from medtune.trainables.data import DataConfig, cache_stats, load_splits
from medtune.trainables.data.image_facts import file_facts, hamming, perceptual_hashes, pixel_hashes
from medtune.trainables.data.leakage import (
    MAJORITY,
    MIN_CLASS_IMAGES,
    NEAR_BITS,
    NEAR_CORRELATION,
    SplitView,
    groups_across,
    shortcuts,
)
from medtune.trainables.data.loading import check_leakage

pytestmark = pytest.mark.usefixtures("isolated_data")
BRAIN = SHARED / "data" / "brain_tumor_mri"


def _by_check(report):
    return {f.check: f for f in report.findings}


def test_copies_reencodings_and_the_storage_mode_shortcut_are_found(tmp_path):
    root = make_leaky_folder(tmp_path / "brain")
    report = check_leakage(folder_cfg(root, tmp_path, val_fraction=0.2))
    found = _by_check(report)
    exact = found["exact duplicates across splits"]
    assert exact.count == BYTE_COPIES + 1  # the PNG re-encoding has the same decoded pixels
    assert f"{BYTE_COPIES + 1} of {report.checked['test']} test images are copies of train" in exact.message
    assert any(REENCODED in e for e in exact.examples) and len(exact.rows["test"]) == BYTE_COPIES + 1
    near = found["near duplicates across splits"]
    assert near.count == 1 and RESAVED in near.examples[0]
    mode = found["shortcut: storage mode"]
    assert "'L' is 100% of train's glioma" in mode.message and "0% of its notumor" in mode.message
    assert "'RGB' is 100% of train's notumor" in mode.message and "test " in mode.message
    assert report.checked == {"train": 48, "val": 12, "test": 20 + BYTE_COPIES + 2}


def test_a_clean_folder_has_no_findings(tmp_path):
    report = check_leakage(folder_cfg(make_kermany(tmp_path / "k", per_class=24), tmp_path))
    assert report.findings == () and report.summary().endswith("clean")


def test_the_checks_read_the_decode_cache_and_open_no_image(tmp_path, monkeypatch):
    root = make_leaky_folder(tmp_path / "brain")
    cfg = folder_cfg(root, tmp_path, val_fraction=0.2)
    load_splits(cfg)  # what preflight's prepare_data does first
    decodes = cache_stats()["decodes"]

    def refuse(*args, **kwargs):
        raise AssertionError("a leakage check opened an image file")

    monkeypatch.setattr(Image, "open", refuse)
    monkeypatch.setattr(pydicom, "dcmread", refuse)
    report = check_leakage(cfg)
    assert cache_stats()["decodes"] == decodes and len(report.findings) >= 3


def test_evidence_is_stored_in_the_cache_entry(tmp_path):
    from medtune.trainables.data import clear_memo

    root = make_leaky_folder(tmp_path / "brain")
    cfg = folder_cfg(root, tmp_path, val_fraction=0.2)
    first = check_leakage(cfg)
    clear_memo()  # the next load reads the disk entry, not the process's memo
    assert check_leakage(cfg) == first and cache_stats()["disk_hits"] >= 1
    entry = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    stored = {p.name for p in entry.glob("test_evidence_*.npy")}
    assert {"test_evidence_pixel_hash.npy", "test_evidence_phash.npy", "test_evidence_mode.npy"} <= stored


def test_on_leak_drop_leaves_exact_copies_out_of_val_and_test(tmp_path):
    root = make_leaky_folder(tmp_path / "brain")
    kept = load_splits(folder_cfg(root, tmp_path, val_fraction=0.2))
    dropped = load_splits(folder_cfg(root, tmp_path, val_fraction=0.2, on_leak="drop"))
    assert len(dropped.test) == len(kept.test) - BYTE_COPIES - 1 and len(dropped.train) == len(kept.train)
    assert np.array_equal(dropped.train.images, kept.train.images) and dropped.fingerprint != kept.fingerprint
    report = check_leakage(folder_cfg(root, tmp_path, val_fraction=0.2, on_leak="drop"))
    assert report.dropped == {"test": BYTE_COPIES + 1}
    assert "exact duplicates across splits" not in _by_check(report)
    test_hashes = set(pixel_hashes(np.asarray(dropped.test.images)).tolist())
    assert not test_hashes & set(pixel_hashes(np.asarray(dropped.train.images)).tolist())


def test_ungrouped_loads_keep_their_fingerprint_with_the_new_settings(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=6)
    plain = load_splits(folder_cfg(root, tmp_path, val_fraction=0.25))
    warn = load_splits(folder_cfg(root, tmp_path, val_fraction=0.25, on_leak="warn"))
    error = load_splits(folder_cfg(root, tmp_path, val_fraction=0.25, on_leak="error"))
    assert plain.fingerprint == warn.fingerprint == error.fingerprint


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = (x.astype(np.float64).ravel() - x.mean() for x in (a, b))
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_near_copy_thresholds_keep_reencodings_and_part_distinct_images():
    """The documented thresholds: re-saves, a rescale and a brightness change stay within
    ``NEAR_BITS`` and ``NEAR_CORRELATION``; distinct images fall outside one of them."""
    rng = np.random.default_rng(3)
    originals = [blob(rng, 64) for _ in range(40)]
    size = 32
    small = lambda img: np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)  # noqa: E731
    base = np.stack([small(img) for img in originals])[..., None]
    for variant in (lambda im: _jpeg(im, 50), lambda im: _jpeg(im, 90),
                    lambda im: im.resize((56, 56), Image.Resampling.BICUBIC).resize((64, 64)),
                    lambda im: Image.fromarray(np.clip(np.asarray(im, np.int16) * 0.8 + 30, 0, 255).astype(np.uint8))):
        changed = np.stack([small(variant(img)) for img in originals])[..., None]
        bits = hamming(perceptual_hashes(base), perceptual_hashes(changed))
        assert bits.max() <= NEAR_BITS, bits
        assert min(_correlation(a, b) for a, b in zip(base, changed)) >= NEAR_CORRELATION
    hashes = perceptual_hashes(base)
    for i in range(len(base)):
        for j in range(i + 1, len(base)):
            close = hamming(hashes[i], hashes[j]) <= NEAR_BITS
            assert not (close and _correlation(base[i], base[j]) >= NEAR_CORRELATION), (i, j)


def test_pixel_hashes_see_decoded_pixels_not_bytes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)
    again = np.ascontiguousarray(images[[0, 1, 0, 3]])
    assert pixel_hashes(again)[0] == pixel_hashes(again)[2] == pixel_hashes(images)[0]
    assert len(set(pixel_hashes(images).tolist())) == 4
    assert perceptual_hashes(images[:, :8, :8]).dtype == np.uint64  # tiny images: the grid still fits


def _view(name, labels, **columns) -> SplitView:
    return SplitView(name, np.asarray(labels), {k: np.asarray(v) for k, v in columns.items()})


def test_the_shortcut_rule_on_dicom_manufacturer_and_its_guards():
    n = MIN_CLASS_IMAGES
    labels = [0] * n + [1] * n
    maker = ["ACME"] * n + ["ACME"] * 2 + ["Other"] * (n - 2)  # 100% of class 0, 10% of class 1
    train = _view("train", labels, manufacturer=maker, mode=["MONOCHROME2"] * (2 * n))
    (finding,) = shortcuts([train, _view("test", [0, 1], manufacturer=["ACME", "Other"])], ("a", "b"))
    assert finding.check == "shortcut: DICOM Manufacturer" and "'ACME' is 100% of train's a" in finding.message
    assert "10% of its b" in finding.message and "'Other' is 90% of train's b" in finding.message
    assert finding.count == n + n - 2  # the images whose value marks their class
    maker[n + 2] = "ACME"  # 15% of class 1: no longer <= 10%
    assert shortcuts([_view("train", labels, manufacturer=maker)], ("a", "b")) == []
    few = [0] * (n - 1) + [1] * n  # a class too small to judge
    assert shortcuts([_view("train", few, manufacturer=["ACME"] * (n - 1) + ["Other"] * n)], ("a", "b")) == []
    assert MAJORITY == 0.9


def test_groups_across_splits_names_the_groups():
    train = SplitView("train", np.array([0, 1, 0]), {}, groups=np.array(["p1", "p2", "p3"]))
    test = SplitView("test", np.array([1, 0]), {}, groups=np.array(["p2", "p4"]))
    finding = groups_across([train, test])
    assert finding.count == 1 and "p2: 1 train, 1 test" in finding.message and "1 of 4 groups" in finding.message
    assert groups_across([SplitView("train", np.array([0]), {})]) is None  # no group column, no check


def test_file_facts_read_headers_only(tmp_path):
    ct = file_facts(get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    assert ct["format"] == "DICOM" and ct["modality"] == "CT" and ct["manufacturer"] == str(ds.Manufacturer)
    assert ct["bits"] == 16 and ct["dims"] == "128x128"
    Image.new("RGB", (30, 20)).save(tmp_path / "x.png")
    png = file_facts(str(tmp_path / "x.png"))
    assert (png["format"], png["mode"], png["bits"], png["dims"]) == ("PNG", "RGB", 8, "30x20")
    assert png["extension"] == ".png" and png["file_bytes"] == (tmp_path / "x.png").stat().st_size


@pytest.mark.slow
@pytest.mark.skipif(not BRAIN.is_dir(), reason=f"{BRAIN} not available")
def test_brain_tumor_mri_copies_and_storage_modes(tmp_path_factory):
    """The issue's numbers: 216 test images equal to training images, notumor stored as RGB and
    glioma as L, and 1,095 test images once the copies are dropped (shared/data/README.md)."""
    cache = tmp_path_factory.mktemp("brain-cache")
    cfg = DataConfig(str(BRAIN), image_size=32, val_fraction=0.1, cache_dir=str(cache))
    found = _by_check(check_leakage(cfg))
    exact = found["exact duplicates across splits"]
    assert len(exact.rows["test"]) == 216 and "216 of 1311 test images" in exact.message
    mode = found["shortcut: storage mode"]
    assert "'RGB' is 98% of train's notumor" in mode.message and "'L' is 91% of train's glioma" in mode.message
    dropped = load_splits(DataConfig(str(BRAIN), image_size=32, val_fraction=0.1, cache_dir=str(cache),
                                     on_leak="drop"))
    assert np.bincount(dropped.test.labels).tolist() == [300, 200, 300, 295]


def test_brain_tumor_mri_split_folders_are_read(tmp_path):
    if not BRAIN.is_dir():
        pytest.skip(f"{BRAIN} not available")
    from medtune.trainables.data import inspect_source

    summary = inspect_source(DataConfig(str(BRAIN), val_fraction=0.1, cache_dir=str(tmp_path)))
    assert summary["split_folders"] == {"train": "Training", "test": "Testing"}
    assert summary["totals"] == {"train": 5708, "test": 1311}
    assert Path(summary["path"]).name == "brain_tumor_mri"
