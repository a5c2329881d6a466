"""MedMNIST-style .npz sources: {train,val,test}_{images,labels} arrays in one zip."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import Decoded
from .colour import GREY_TOLERANCE, grey_to_rgb, mean_chroma, rgb_to_gray
from .errors import DataError
from .imaging import resize_stack
from .medmnist import class_names_for_file

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "test")


@dataclass(frozen=True)
class NpzIndex:
    """What a cheap look at an .npz found: labels per split, image shapes, class names."""

    path: Path
    labels: dict[str, np.ndarray]
    image_shapes: dict[str, tuple[int, ...]]
    class_names: tuple[str, ...]


def _array_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array, read from the .npy headers only (nothing decompressed in full)."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:  # rare format 3.0: fall back to reading the array
                        with np.load(path, allow_pickle=False) as z:
                            arr = z[info.filename[:-4]]
                        shape, dtype = arr.shape, arr.dtype
                headers[info.filename[:-4]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"{path}: expected a .npz (zip of .npy arrays) but could not read it: {exc}") from exc
    return headers


def _present_splits(path: Path, keys: set[str], need_val: bool) -> list[str]:
    expected = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")]
    missing = [f"{s}_{k}" for s in REQUIRED_SPLITS for k in ("images", "labels") if f"{s}_{k}" not in keys]
    has_val = {"val_images", "val_labels"} & keys
    if len(has_val) == 1:
        missing.append(({"val_images", "val_labels"} - has_val).pop())
    elif not has_val and need_val:
        raise DataError(f"{path}: has no val_images/val_labels keys; set DataConfig.val_fraction to carve "
                        f"a validation split out of train (found keys {sorted(keys)})")
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; expected {expected} "
                        f"(val_* optional when val_fraction is set), found {sorted(keys)}")
    return [s for s in SPLITS if f"{s}_images" in keys]


def _check_images(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise DataError(f"{path}[{key}]: holds Python objects; refusing to unpickle (expected uint8 images)")
    ok_rank = len(shape) == 3 or (len(shape) == 4 and shape[3] in (1, 3))
    if not ok_rank or min(shape[1:3], default=0) < 1:
        raise DataError(f"{path}[{key}]: expected images shaped (N, H, W) or (N, H, W, 1|3), got {shape}")
    if dtype != np.uint8:
        raise DataError(f"{path}[{key}]: expected uint8 images, got dtype {dtype}")


def _check_labels(path: Path, key: str, labels: np.ndarray) -> np.ndarray:
    """(N,) int64 class labels, or (N, L) int64 0/1 findings when the file is multi-label (L > 1)."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2 and labels.shape[1] > 1:
        if labels.dtype.kind not in "iub" or (labels.size and not np.isin(labels, (0, 1)).all()):
            raise DataError(f"{path}[{key}]: labels shaped {labels.shape} are read as multi-label findings and must "
                            f"be 0/1 integers; found values {np.unique(labels)[:10].tolist()}")
        return labels.astype(np.int64)
    if labels.ndim != 1:
        raise DataError(f"{path}[{key}]: expected labels shaped (N,) or (N, 1) (one class per image) or (N, L) "
                        f"(L 0/1 findings per image: multi-label), got {labels.shape}")
    if labels.dtype.kind not in "iub":
        raise DataError(f"{path}[{key}]: expected integer class labels, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise DataError(f"{path}[{key}]: expected class labels >= 0, found {int(labels.min())}")
    return labels.astype(np.int64)


def _class_names(path: Path, labels: dict[str, np.ndarray]) -> tuple[str, ...]:
    widths = {v.shape[1] if v.ndim == 2 else 0 for v in labels.values()}
    if len(widths) > 1:
        shapes = ", ".join(f"{split}_labels {v.shape}" for split, v in labels.items())
        raise DataError(f"{path}: the splits' labels differ in shape ({shapes}); expected one class per image "
                        "(N,) or the same L 0/1 findings (N, L) in every split")
    if widths != {0}:  # multi-label: the findings' names
        width, known = widths.pop(), class_names_for_file(path)
        return known if known is not None and len(known) == width else tuple(f"label_{i}" for i in range(width))
    top = max((int(v.max()) for v in labels.values() if v.size), default=0)
    known = class_names_for_file(path)
    if known is None:
        return tuple(str(i) for i in range(max(top + 1, 2)))
    if top >= len(known):
        raise DataError(f"{path}: label {top} out of range for classes {known} (expected labels 0..{len(known) - 1})")
    return known


def index_npz(path: Path, need_val: bool) -> NpzIndex:
    """Validate keys, shapes and labels without decompressing the images."""
    headers = _array_headers(path)
    splits = _present_splits(path, set(headers), need_val)
    labels: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    with np.load(path, allow_pickle=False) as z:
        for split in splits:
            img_key, lab_key = f"{split}_images", f"{split}_labels"
            shape, dtype = headers[img_key]
            _check_images(path, img_key, shape, dtype)
            if headers[lab_key][1].hasobject:
                raise DataError(f"{path}[{lab_key}]: holds Python objects; refusing to unpickle (expected int labels)")
            lab = _check_labels(path, lab_key, z[lab_key])
            if len(lab) != shape[0]:
                raise DataError(f"{path}: {img_key} has {shape[0]} images but {lab_key} has {len(lab)} labels; "
                                "expected equal lengths")
            if shape[0] == 0 and (split in REQUIRED_SPLITS or need_val):
                raise DataError(f"{path}[{img_key}]: empty split; expected at least one image")
            labels[split], shapes[split] = lab, shape
    return NpzIndex(path=path, labels=labels, image_shapes=shapes, class_names=_class_names(path, labels))


def _colour_images(path: Path, index: NpzIndex) -> int:
    """How many images of the file's (N, H, W, 3) splits are colour (``colour.py``); grey-shaped
    splits are not read. A first pass over the file, so that the mode is known before any split is
    converted (MedMNIST's colour sets: pathmnist, dermamnist, retinamnist, bloodmnist)."""
    rgb = [s for s, shape in index.image_shapes.items() if len(shape) == 4 and shape[3] == 3]
    if not rgb:
        return 0
    with np.load(path, allow_pickle=False) as z:
        return sum(int((mean_chroma(z[f"{s}_images"]) > GREY_TOLERANCE).sum()) for s in rgb)


def decode_npz(path: Path, image_size: int) -> Decoded:
    """All present splits as (N, S, S, C) uint8 + int64 labels, resized once if needed: C = 3 when any
    image is colour (grey splits repeated), else C = 1 (RGB that is grey inside -> luma)."""
    index = index_npz(path, need_val=False)
    colour_images = _colour_images(path, index)
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as z:
        for split, labels in index.labels.items():
            images = z[f"{split}_images"]
            if colour_images:
                images = images if images.ndim == 4 and images.shape[3] == 3 else grey_to_rgb(images)
                splits[split] = (resize_stack(images, image_size), labels)
                continue
            if images.ndim == 4:
                images = images[..., 0] if images.shape[3] == 1 else rgb_to_gray(images)
            images = resize_stack(images, image_size)
            splits[split] = (images[..., None], labels)
    log.info("Decoded %s at %d px (%s): %s", path, image_size, "colour" if colour_images else "grey",
             {k: len(v[1]) for k, v in splits.items()})
    return Decoded(splits=splits, class_names=index.class_names, channels=3 if colour_images else 1,
                   colour_images=colour_images)
