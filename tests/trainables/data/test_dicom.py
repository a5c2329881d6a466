"""DICOM folders: the Kermany layout with .dcm files, built from pydicom's own test files."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from medtune.trainables.data import DataConfig, load_splits
from medtune.trainables.data.dicom import read_dicom_gray, window

CT = get_testdata_file("CT_small.dcm")      # 16-bit signed, RescaleIntercept -1024, no window
MR = get_testdata_file("MR_small.dcm")      # 16-bit, WindowCenter 600 / WindowWidth 1600
RGB = get_testdata_file("ExplVR_BigEnd.dcm")  # 8-bit RGB, big endian
JPEG_12BIT = get_testdata_file("JPEG-lossy.dcm")  # 12-bit lossy JPEG: no decoder here -> unreadable


def _monochrome1(tmp_path: Path) -> Path:
    ds = pydicom.dcmread(CT)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "ct_monochrome1.dcm"
    ds.save_as(path)
    return path


def test_16_bit_values_go_through_the_modality_lut_and_fill_the_grey_range():
    ds = pydicom.dcmread(CT)
    assert ds.BitsStored == 16 and "WindowCenter" not in ds
    hu = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    expected = np.rint((hu - hu.min()) / (hu.max() - hu.min()) * 255).astype(np.uint8)  # min-max: no window
    grey = read_dicom_gray(CT)
    assert grey.dtype == np.uint8 and grey.shape == (128, 128)
    assert np.array_equal(grey, expected) and grey.min() == 0 and grey.max() == 255


def test_the_files_window_is_applied():
    ds = pydicom.dcmread(MR)
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    grey = read_dicom_gray(MR)
    assert (grey[values <= center - 0.5 - (width - 1) / 2] == 0).all()
    assert (grey[values >= center - 0.5 + (width - 1) / 2] == 255).all()
    inside = (values > center - width / 2 + 1) & (values < center + width / 2 - 1)
    order = np.argsort(values[inside])
    assert (np.diff(grey[inside][order].astype(int)) >= 0).all()  # monotone inside the window
    assert window(np.array([0.0, 100.0, 200.0]), 100.5, 101).tolist() == [0.0, 0.5, 1.0]


def test_monochrome1_is_inverted_so_that_bone_stays_bright(tmp_path):
    assert np.array_equal(read_dicom_gray(_monochrome1(tmp_path)), 255 - read_dicom_gray(CT))


def test_a_colour_file_is_read_as_luma():
    ds = pydicom.dcmread(RGB)
    grey = read_dicom_gray(RGB)
    assert grey.shape == (ds.Rows, ds.Columns)
    rgb = ds.pixel_array.astype(np.float64)
    assert np.abs(grey - (rgb @ [0.299, 0.587, 0.114])).max() <= 1


def test_a_dicom_folder_trains_like_a_jpeg_folder_and_counts_unreadable_files(tmp_path):
    root = tmp_path / "dicom"
    sources = {"abnormal": [CT, _monochrome1(tmp_path)], "normal": [MR, RGB]}
    for split in ("train", "val", "test"):
        for cls, files in sources.items():
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                for j, source in enumerate(files):
                    shutil.copy(source, folder / f"{i}_{j}.dcm")
    shutil.copy(JPEG_12BIT, root / "train" / "normal" / "compressed.dcm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_splits(DataConfig(str(root), image_size=32, cache_dir=str(tmp_path / "cache"),
                                        max_bad_fraction=0.05))
    assert [str(w.message) for w in caught if "unreadable" in str(w.message)], "the compressed file is counted"
    assert any("compressed.dcm" in str(w.message) for w in caught)
    assert splits.class_names == ("normal", "abnormal")  # the finding is the positive class
    assert len(splits.train.labels) == 12 and len(splits.test.labels) == 12
    # One colour file (RGB) among grey ones: the folder is read in colour, the grey files repeated.
    assert splits.train.images.shape[1:] == (32, 32, 3) and splits.train.images.dtype == np.uint8
    assert splits.colour and splits.colour_images == 9  # the RGB file, 3 copies in each of 3 splits
    assert splits.train.images.std() > 10  # real images, not blank ones
