"""Turning one image of any size and mode into a square grayscale uint8 array.

Shared by the .npz and folder sources so both go through the same resampling; that keeps
a Kermany folder and PneumoniaMNIST comparable at the same `image_size`.

Geometry follows MedMNIST's own preprocessing: centre-crop to the short edge, then
resize to size x size. A plain resize would squash the (usually landscape) Kermany
X-rays; MedMNIST cropped, so we crop too.

Resampling is Pillow's BILINEAR. Pillow resizes by convolution with the filter
stretched by the scale factor, so downscaling is antialiased (area-like averaging, no
moire from the ribs), and upscaling 28 px MedMNIST stays smooth. `reducing_gap=3.0`
lets Pillow first shrink big JPEGs by an integer box reduce, which is several times
faster on 2k px X-rays and visually the same. For JPEGs, `draft()` additionally asks
libjpeg to decode straight at a reduced DCT scale (kept >= 2x the target size).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .dicom import is_dicom, read_dicom_gray

RESAMPLE = Image.Resampling.BILINEAR
REDUCING_GAP = 3.0

_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _to_gray(img: Image.Image) -> Image.Image:
    """Grayscale 8-bit; 16-bit/float images are min-max stretched, since convert("L") would clip them."""
    if img.mode == "L":
        return img
    if img.mode in _HIGH_DEPTH_MODES:
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
    return img.convert("L")


def square_resize(img: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to (size, size); returns uint8 (size, size)."""
    img = _to_gray(img)
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    if (w, h) == (size, size):
        return np.asarray(img, dtype=np.uint8)
    out = img.resize((size, size), resample=RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    return np.asarray(out, dtype=np.uint8)


def decode_file(path: str, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Open an image file (JPEG, PNG or DICOM); return it as uint8 (size, size) and its own
    (width, height). Raises on unreadable files."""
    if is_dicom(path):
        pixels = read_dicom_gray(path)
        return square_resize(Image.fromarray(pixels), size), (pixels.shape[1], pixels.shape[0])
    with Image.open(path) as img:
        native = img.size
        if img.format == "JPEG":
            # Decode at reduced scale when the file is much bigger than needed.
            img.draft("L", (2 * size, 2 * size))
        img.load()
        return square_resize(img, size), native


def resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) uint8 -> (N, size, size) uint8, image by image through Pillow."""
    if images.shape[1:] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = square_resize(Image.fromarray(np.ascontiguousarray(img)), size)
    return out
