"""Colour decided by the data: the mode of each source (grey within a tolerance, mixed folders in
one mode), the decode cache's round trip, and colour through npz, folders, DICOM and MedMNIST names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from data_helpers import SHARED, folder_cfg, good_arrays, write_npz
from PIL import Image
from pydicom.data import get_testdata_file

from medtune.trainables.data import DataConfig, clear_memo, load_splits
from medtune.trainables.data.cache import CACHE_FORMAT, cache_stats
from medtune.trainables.data.colour import (
    GREY_TOLERANCE,
    grey_to_rgb,
    is_grey,
    mean_chroma,
    rgb_to_gray,
    stack_in_mode,
)
from medtune.trainables.data.dicom import read_dicom, read_dicom_gray
from medtune.trainables.data.imaging import decode_file, decode_file_colour, resize_stack, square_resize_rgb
from medtune.trainables.data.loading import mode_summary
from medtune.trainables.data.medmnist import MEDMNIST

pytestmark = pytest.mark.usefixtures("isolated_data")

RGB_DICOM = get_testdata_file("ExplVR_BigEnd.dcm")  # 8-bit RGB, big endian: a colour photo
YBR_JPEG_DICOM = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")  # YBR_FULL, JPEG baseline: colour bars
RLE_RGB_DICOM = get_testdata_file("SC_rgb_rle.dcm")  # RGB colour bars, little endian (RLE)
CT = get_testdata_file("CT_small.dcm")
BRAIN = SHARED / "data" / "brain_tumor_mri"


def _texture(rng: np.random.Generator, size: int = 40) -> np.ndarray:
    return rng.integers(40, 200, (size, size), dtype=np.uint8)


def _tinted(grey: np.ndarray, offsets: tuple[int, int, int]) -> np.ndarray:
    return np.clip(grey[..., None].astype(int) + np.array(offsets), 0, 255).astype(np.uint8)


# --- the rule ----------------------------------------------------------------------------------


def test_equal_channels_and_a_faint_tint_are_grey_a_real_hue_is_colour():
    grey = _texture(np.random.default_rng(0))
    assert is_grey(grey) and is_grey(grey[..., None]) and is_grey(grey_to_rgb(grey[None])[0])
    assert mean_chroma(grey_to_rgb(grey[None])).tolist() == [0.0]
    faint = _tinted(grey, (0, 3, 6))  # a blue cast of 6 levels everywhere: mean chroma 6
    assert mean_chroma(faint[None])[0] == 6.0 and is_grey(faint)
    at_limit = _tinted(grey, (0, 0, int(GREY_TOLERANCE)))
    assert is_grey(at_limit) and not is_grey(_tinted(grey, (0, 0, int(GREY_TOLERANCE) + 1)))
    assert not is_grey(_tinted(grey, (30, 0, -20)))  # stain-like: 50 levels


def test_a_coloured_mark_on_a_grey_image_keeps_it_grey():
    """Why the rule is a mean, not a per-pixel maximum: a red watermark over 2% of a grey slice."""
    image = grey_to_rgb(_texture(np.random.default_rng(1))[None])[0]
    image[:2, :20] = (250, 20, 20)  # 40 of 1,600 pixels differ by 230 levels
    spread = image.max(-1).astype(int) - image.min(-1)
    assert spread.max() == 230 and mean_chroma(image[None])[0] <= GREY_TOLERANCE and is_grey(image)


def test_stack_in_mode_repeats_grey_images_in_a_colour_source():
    grey, rgb = np.full((4, 4), 7, np.uint8), np.zeros((4, 4, 3), np.uint8)
    assert stack_in_mode([grey], 4, 1).shape == (1, 4, 4, 1)
    both = stack_in_mode([grey, rgb], 4, 3)
    assert both.shape == (2, 4, 4, 3) and (both[0] == 7).all() and (both[1] == 0).all()


# --- folders -----------------------------------------------------------------------------------


def _folder(root: Path, make) -> Path:
    """A Kermany tree whose every file is ``make(split, class index, i)`` -> (PIL image, suffix)."""
    for split in ("train", "val", "test"):
        for c, name in enumerate(("a", "b")):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                image, suffix = make(split, c, i)
                image.save(root / split / name / f"{i}{suffix}")
    return root


def test_rgb_files_grey_inside_come_out_grey_exactly_as_the_grey_path_decodes_them(tmp_path):
    rng = np.random.default_rng(2)

    def make(split, c, i):  # L, RGB with equal channels, RGB with a faint tint; JPEG and PNG
        grey = _texture(rng)
        image = [Image.fromarray(grey), Image.fromarray(grey_to_rgb(grey[None])[0]),
                 Image.fromarray(_tinted(grey, (0, 2, 5)))][i % 3]
        return image, (".jpg", ".png")[i % 2]

    root = _folder(tmp_path / "k", make)
    splits = load_splits(folder_cfg(root, tmp_path, image_size=24))
    assert not splits.colour and splits.channels == 1 and splits.colour_images == 0
    assert splits.train.images.shape == (8, 24, 24, 1)
    files = sorted((root / "train").rglob("*.*"))
    expected = np.stack([decode_file(str(f), 24)[0] for f in files])
    assert np.array_equal(splits.train.images[..., 0], expected)  # bit for bit today's grey path
    assert mode_summary(splits) == {"mode": "grey", "channels": 1, "colour_images": 0}


def test_a_mixed_folder_is_read_in_colour_with_its_grey_files_repeated(tmp_path):
    rng = np.random.default_rng(3)

    def make(split, c, i):  # one colour PNG per class and split, the rest grey
        grey = _texture(rng)
        if i == 0:
            return Image.fromarray(_tinted(grey, (40, 0, -30))), ".png"
        return Image.fromarray(grey), ".png"

    root = _folder(tmp_path / "mixed", make)
    splits = load_splits(folder_cfg(root, tmp_path, image_size=24))
    assert splits.colour and splits.channels == 3 and splits.colour_images == 6
    for part in (splits.train, splits.val, splits.test):
        assert part.images.shape == (8, 24, 24, 3)
    files = sorted((root / "train").rglob("*.png"))
    for image, path in zip(splits.train.images, files):
        if path.name == "0.png":
            assert np.array_equal(image, square_resize_rgb(Image.open(path), 24))
        else:  # a grey file in a colour source: three equal channels, its grey decode in each
            assert np.array_equal(image, np.repeat(decode_file(str(path), 24)[0][..., None], 3, axis=-1))
    assert mode_summary(splits) == {"mode": "colour", "channels": 3, "colour_images": 6}


def test_a_colour_jpeg_keeps_its_hue(tmp_path):
    path = tmp_path / "red.jpg"
    Image.fromarray(np.full((64, 48, 3), (200, 30, 30), np.uint8)).save(path, quality=95)
    rgb, native = decode_file_colour(str(path), 16)
    assert rgb.shape == (16, 16, 3) and native == (48, 64)
    assert np.abs(rgb.astype(int) - (200, 30, 30)).max() <= 4
    grey, _ = decode_file(str(path), 16)  # what the grey path made of it: luma
    assert grey.shape == (16, 16) and abs(int(grey.mean()) - round(0.299 * 200 + 0.587 * 30 + 0.114 * 30)) <= 3


@pytest.mark.skipif(not (BRAIN / "Testing").is_dir(), reason=f"{BRAIN} not available")
def test_brain_mri_test_split_is_grey_in_one_mode(tmp_path):
    """The real set's RGB JPEGs are grey inside: of the 477 RGB files in Testing/{notumor,glioma}, 22
    have pixels whose channels differ by more than 2 levels (up to 209: a tinted watermark). One grey mode."""
    root = tmp_path / "brain"
    for name in ("notumor", "glioma"):  # notumor: nearly all RGB; glioma: nearly all L
        for split in ("train", "test"):
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / split / name).symlink_to(BRAIN / "Testing" / name)
    splits = load_splits(DataConfig(str(root), image_size=28, val_fraction=0.2, cache_dir=str(tmp_path / "c")))
    assert not splits.colour and splits.colour_images == 0 and splits.test.images.shape == (705, 28, 28, 1)


# --- the cache ---------------------------------------------------------------------------------


def test_colour_round_trips_through_the_disk_cache(tmp_path):
    arrays = good_arrays(size=8)
    rng = np.random.default_rng(4)
    arrays["train_images"] = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    path = write_npz(tmp_path / "colour.npz", **arrays)
    cfg = DataConfig(str(path), image_size=8, cache_dir=str(tmp_path / "c"))
    first = load_splits(cfg)
    clear_memo()
    again = load_splits(cfg)
    assert cache_stats()["disk_hits"] == 1
    assert again.colour and again.train.images.shape == (10, 8, 8, 3)
    assert np.array_equal(again.train.images, first.train.images) and again.fingerprint == first.fingerprint
    assert again.colour_images == first.colour_images == 10
    (entry,) = [p for p in (tmp_path / "c").iterdir() if p.is_dir()]
    meta = json.loads((entry / "meta.json").read_text())
    assert (meta["format"], meta["channels"], meta["colour_images"]) == (CACHE_FORMAT, 3, 10)


def test_an_entry_of_the_grey_only_format_is_decoded_again(tmp_path):
    path = write_npz(tmp_path / "g.npz", **good_arrays())
    cfg = DataConfig(str(path), image_size=8, cache_dir=str(tmp_path / "c"))
    load_splits(cfg)
    (entry,) = [p for p in (tmp_path / "c").iterdir() if p.is_dir()]
    meta = json.loads((entry / "meta.json").read_text())
    (entry / "meta.json").write_text(json.dumps({**meta, "format": CACHE_FORMAT - 1}))
    clear_memo()
    load_splits(cfg)
    assert cache_stats()["decodes"] == 2


# --- npz and MedMNIST names --------------------------------------------------------------------


def test_npz_colour_is_resized_per_channel_and_grey_inside_rgb_takes_the_old_luma_path(tmp_path):
    arrays = good_arrays(size=12)
    rng = np.random.default_rng(5)
    colour = {k: (rng.integers(0, 256, (*v.shape, 3), dtype=np.uint8) if k.endswith("images") else v)
              for k, v in arrays.items()}
    s = load_splits(DataConfig(str(write_npz(tmp_path / "c.npz", **colour)), image_size=20,
                               cache_dir=str(tmp_path / "c")))
    assert s.colour and s.test.images.shape == (6, 20, 20, 3)
    assert np.array_equal(s.test.images, resize_stack(colour["test_images"], 20))
    assert np.array_equal(resize_stack(colour["test_images"], 20)[..., 1],
                          resize_stack(np.ascontiguousarray(colour["test_images"][..., 1]), 20))  # channel by channel
    grey_inside = {k: (_tinted_stack(v) if k.endswith("images") else v) for k, v in arrays.items()}
    g = load_splits(DataConfig(str(write_npz(tmp_path / "g.npz", **grey_inside)), image_size=20,
                               cache_dir=str(tmp_path / "c")))
    assert not g.colour and g.test.images.shape == (6, 20, 20, 1)
    assert np.array_equal(g.test.images[..., 0], resize_stack(rgb_to_gray(grey_inside["test_images"]), 20))


def _tinted_stack(grey: np.ndarray) -> np.ndarray:
    return np.clip(grey[..., None].astype(int) + np.array([0, 1, 3]), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", [n for n, info in MEDMNIST.items() if info.n_channels == 3])
def test_medmnist_colour_sets_come_out_colour(name, tmp_path):
    """pathmnist, dermamnist, retinamnist, bloodmnist: medmnist's table says RGB, and the data agrees."""
    info = MEDMNIST[name]
    rng = np.random.default_rng(6)
    k = len(info.class_names)
    arrays = {}
    for split in ("train", "val", "test"):
        labels = np.arange(2 * k) % k
        arrays[f"{split}_images"] = rng.integers(0, 256, (2 * k, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.uint8)
    write_npz(tmp_path / f"{name}.npz", **arrays)
    splits = load_splits(DataConfig(name, data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")))
    assert splits.colour and splits.train.images.shape == (2 * k, 28, 28, 3)
    assert splits.class_names == info.class_names


# --- DICOM -------------------------------------------------------------------------------------


def test_rgb_dicom_is_read_in_colour_and_ybr_is_not_converted_twice():
    ds = pydicom.dcmread(RGB_DICOM)
    rgb = read_dicom(RGB_DICOM)
    assert rgb.shape == (ds.Rows, ds.Columns, 3) and np.array_equal(rgb, ds.pixel_array)
    assert np.array_equal(read_dicom_gray(RGB_DICOM), rgb_to_gray(rgb[None])[0])
    bars = read_dicom(YBR_JPEG_DICOM)  # pydicom hands YBR over as RGB already
    assert np.abs(bars[5, 5].astype(int) - (255, 0, 0)).max() <= 3, "the first colour bar is red"
    decoded, native = decode_file_colour(RGB_DICOM, 16)
    assert decoded.shape == (16, 16, 3) and native == (ds.Columns, ds.Rows)


def test_a_dicom_folder_of_rgb_files_grey_inside_is_grey_and_colour_ones_colour(tmp_path):
    ds = pydicom.dcmread(RLE_RGB_DICOM)
    grey = rgb_to_gray(ds.pixel_array[None])[0]
    ds.set_pixel_data(grey_to_rgb(grey[None])[0], "RGB", 8)  # an ultrasound saved as RGB, grey inside
    grey_rgb = tmp_path / "grey_rgb.dcm"
    ds.save_as(grey_rgb)
    decoded, _ = decode_file_colour(str(grey_rgb), 16)
    assert decoded.shape == (16, 16) and np.array_equal(decoded, decode_file(str(grey_rgb), 16)[0])

    def tree(root: Path, files: list[str]) -> Path:
        for split in ("train", "val", "test"):
            for c, name in enumerate(("a", "b")):
                (root / split / name).mkdir(parents=True)
                for i, source in enumerate(files):
                    shutil.copy(source, root / split / name / f"{i}.dcm")
        return root

    grey_only = load_splits(DataConfig(str(tree(tmp_path / "g", [str(grey_rgb), CT])), image_size=16,
                                       cache_dir=str(tmp_path / "c")))
    assert not grey_only.colour and grey_only.train.images.shape == (4, 16, 16, 1)
    colour = load_splits(DataConfig(str(tree(tmp_path / "c3", [RGB_DICOM, CT])), image_size=16,
                                    cache_dir=str(tmp_path / "c")))
    assert colour.colour and colour.train.images.shape == (4, 16, 16, 3) and colour.colour_images == 6
