"""DICOM files (``.dcm``) as the image a viewer shows (grey, or RGB for a colour file), for the folder source.

A DICOM pixel array is not an image yet: 12- or 16-bit stored values become physical values
through the modality LUT (RescaleSlope/RescaleIntercept: Hounsfield units for CT), and a viewer
maps those to grey levels through the file's window (WindowCenter/WindowWidth, the first one
when several are given, by DICOM's linear VOI function, PS3.3 C.11.2.1.2). Without a window the
full range of the image's values is stretched to 0-255 (min-max), which is what a viewer does
with no preset. ``MONOCHROME1`` stores the inverse (low values bright, as on film) and is inverted
so that every image has bone bright. Colour files (``SamplesPerPixel`` 3: ultrasound, photos; YBR
converted to RGB) are read as RGB by ``read_dicom`` and as luma by ``read_dicom_gray``: which one a
source gets is decided by its data (``colour.py``). A multi-frame file gives its middle frame (a
volume's central slice).

Files pydicom cannot decode (a compressed transfer syntax without a decoder installed, a
truncated file) raise, and the folder source skips and counts them like unreadable JPEGs.
pydicom parses the file's tags itself and unpickles nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .colour import luma

DICOM_EXTS = frozenset({".dcm", ".dicom"})


def is_dicom(path: str | Path) -> bool:
    return Path(path).suffix.lower() in DICOM_EXTS


def _first(value: object) -> float:
    """WindowCenter/WindowWidth may hold several windows (MultiValue); the first is the default."""
    try:
        return float(value[0])  # type: ignore[index]
    except TypeError:
        return float(value)  # type: ignore[arg-type]


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's linear VOI window to [0, 1]: below the window black, above it white."""
    if width <= 1:
        return (values > center - 0.5).astype(np.float32)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0).astype(np.float32)


def min_max(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return ((values - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros(values.shape, np.float32)


def read_dicom_gray(path: str | Path) -> np.ndarray:
    """The file's image as (rows, columns) uint8, windowed and with bone bright; a colour file as luma."""
    pixels = read_dicom(path)
    return luma(pixels) if pixels.ndim == 3 else pixels


def read_dicom(path: str | Path) -> np.ndarray:
    """The file's image as (rows, columns) uint8, windowed and with bone bright, or, for a colour
    file, as (rows, columns, 3) uint8 RGB."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(str(path))
    pixels = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[frames // 2]
    if int(getattr(ds, "SamplesPerPixel", 1)) == 3:
        # pydicom 3 hands YBR_FULL/YBR_FULL_422 over already converted to RGB (``as_rgb`` is on by
        # default); converting again, as this did before, turned a red bar blue.
        return np.clip(pixels, 0, 255).astype(np.uint8)
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        grey = window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    else:
        grey = min_max(values)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        grey = 1.0 - grey
    return np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)
