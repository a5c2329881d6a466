"""What the leakage and shortcut checks need to know of each image, gathered while it is decoded.

Two kinds of facts, both stored in the decode cache beside the pixels (``cache.py``), so that
``medtune validate``'s checks (``leakage.py``) read them instead of opening every file again:

- **hashes of the decoded image** as the model sees it (the cached ``image_size`` array): a 64-bit
  BLAKE2b of its bytes (two files with equal hashes give the model the same input, however they
  were encoded), and a 64-bit difference hash (dHash) for near copies. dHash compares each of
  8 x 9 area means with its right neighbour, so it survives re-encoding, rescaling and a uniform
  change of brightness or contrast, which an average hash does not do as well. Both are computed
  on whole arrays, vectorised: they cost a small fraction of decoding.
- **file properties** read from the file's header only (Pillow opens lazily; pydicom stops before
  the pixels): format, extension, storage mode, bit depth, pixel dimensions, file size and, for
  DICOM, Manufacturer and Modality. A model cannot read them, but it can see what they leave in
  the pixels (JPEG artefacts, a resampled size, a scanner's noise), so a property that follows the
  class is a shortcut the model may learn instead of the finding.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .dicom import is_dicom

#: The property columns a folder or manifest source stores per decoded image.
FACT_COLUMNS = ("path", "format", "extension", "mode", "bits", "dims", "file_bytes", "manufacturer", "modality")
#: Bits per sample of Pillow's storage modes (a missing mode reads as unknown, 0).
_MODE_BITS = {"1": 1, "L": 8, "P": 8, "LA": 8, "RGB": 8, "RGBA": 8, "CMYK": 8, "YCbCr": 8, "LAB": 8, "HSV": 8,
              "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


def file_facts(path: str) -> dict[str, Any]:
    """The header-level properties of one image file (cheap: no pixel is decoded here)."""
    facts: dict[str, Any] = {"format": "", "extension": Path(path).suffix.lower(), "mode": "", "bits": 0, "dims": "",
                             "file_bytes": os.stat(path).st_size, "manufacturer": "", "modality": ""}
    try:
        if is_dicom(path):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            facts.update(format="DICOM", mode=str(getattr(ds, "PhotometricInterpretation", "")),
                         bits=int(getattr(ds, "BitsStored", 0) or 0),
                         dims=f"{getattr(ds, 'Columns', '?')}x{getattr(ds, 'Rows', '?')}",
                         manufacturer=str(getattr(ds, "Manufacturer", "")).strip(),
                         modality=str(getattr(ds, "Modality", "")).strip())
        else:
            with Image.open(path) as img:
                facts.update(format=img.format or "", mode=img.mode, bits=_MODE_BITS.get(img.mode, 0),
                             dims=f"{img.size[0]}x{img.size[1]}")
    except Exception:  # noqa: BLE001 - the file decoded already; a header we cannot read leaves its facts blank
        pass
    return facts


def facts_columns(paths: list[str], facts: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Rows of ``file_facts`` (one per decoded image, in the split's order) as column arrays."""
    columns: dict[str, np.ndarray] = {"path": np.array(paths, dtype=str)}
    for name in FACT_COLUMNS[1:]:
        values = [f[name] for f in facts]
        columns[name] = np.array(values, dtype=np.int64 if name in ("bits", "file_bytes") else str)
    return columns


def pixel_hashes(images: np.ndarray) -> np.ndarray:
    """(N,) uint64: BLAKE2b-64 of each decoded image's bytes (equal hash <=> the same input to the model)."""
    out = np.empty(len(images), dtype=np.uint64)
    for i in range(len(images)):
        digest = hashlib.blake2b(np.ascontiguousarray(images[i]).data, digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def _bins(size: int, parts: int) -> np.ndarray:
    """Start of each of ``parts`` near-equal bins over ``size`` pixels (size >= parts)."""
    return np.floor(np.linspace(0, size, parts + 1)[:-1]).astype(np.int64)


def perceptual_hashes(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(N,) uint64 difference hashes of (N, S, S[, C]) images: bit k set when area k of an 8 x 9
    grid is brighter than its right neighbour (colour averaged to grey first)."""
    out = np.empty(len(images), dtype=np.uint64)
    weights = (1 << np.arange(64, dtype=np.uint64)).reshape(8, 8)
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start:start + chunk], dtype=np.float32)
        if block.ndim == 4:
            block = block.mean(axis=3)
        while block.shape[1] < 9 or block.shape[2] < 9:  # tiny images: repeat pixels until the grid fits
            block = block.repeat(2, axis=1).repeat(2, axis=2)
        rows = np.add.reduceat(block, _bins(block.shape[1], 8), axis=1) / np.diff([*_bins(block.shape[1], 8),
                                                                                    block.shape[1]])[:, None]
        grid = np.add.reduceat(rows, _bins(block.shape[2], 9), axis=2) / np.diff([*_bins(block.shape[2], 9),
                                                                                  block.shape[2]])
        bits = grid[:, :, :-1] > grid[:, :, 1:]
        out[start:start + chunk] = (bits * weights).sum(axis=(1, 2), dtype=np.uint64)
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences between uint64 hashes, broadcast (``a[:, None]`` against ``b[None, :]``)."""
    return np.bitwise_count(np.bitwise_xor(a, b))


def with_image_hashes(evidence: dict[str, dict[str, np.ndarray]],
                      splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """``evidence`` (split -> columns, from the decoder; may be empty) with both hashes of every split's images."""
    out = {}
    for split, (images, _) in splits.items():
        columns = dict(evidence.get(split, {}))
        columns["pixel_hash"] = pixel_hashes(images)
        columns["phash"] = perceptual_hashes(images)
        out[split] = columns
    return out
