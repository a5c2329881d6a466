"""Turning one image of any size and mode into a square uint8 array: grey (size, size), or RGB
(size, size, 3) when the image is colour (``decode_file_colour``; ``colour.py`` says when).

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

from .colour import is_grey, luma
from .dicom import is_dicom, read_dicom, read_dicom_gray

RESAMPLE = Image.Resampling.BILINEAR
REDUCING_GAP = 3.0

_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: Pillow modes that hold grey levels only; every other mode (RGB, RGBA, P, CMYK, ...) may be colour.
GREY_MODES = frozenset({"1", "L", "LA", "La"}) | _HIGH_DEPTH_MODES


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
    return _crop_resize(_to_gray(img), size)


def square_resize_rgb(img: Image.Image, size: int) -> np.ndarray:
    """``square_resize`` in colour: uint8 (size, size, 3), each channel cropped and resized alike."""
    return _crop_resize(img if img.mode == "RGB" else img.convert("RGB"), size)


def _crop_resize(img: Image.Image, size: int) -> np.ndarray:
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
        return _decode_grey(img, size)


def _decode_grey(img: Image.Image, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    native = img.size
    if img.format == "JPEG":
        # Decode at reduced scale when the file is much bigger than needed.
        img.draft("L", (2 * size, 2 * size))
    img.load()
    return square_resize(img, size), native


def decode_file_colour(path: str, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``decode_file`` for a source that may be colour: a colour image as uint8 (size, size, 3) RGB,
    a grey one as the (size, size) ``decode_file`` gives, to the bit (a three-channel file that is
    grey inside is decoded a second time, by ``decode_file``); and its own (width, height).

    Whether a three-channel image is grey is judged on its decoded RGB pixels at ``size``
    (``colour.is_grey``). Raises on unreadable files.
    """
    if is_dicom(path):
        pixels = read_dicom(path)
        native = (pixels.shape[1], pixels.shape[0])
        if pixels.ndim == 3:
            rgb = square_resize_rgb(Image.fromarray(pixels), size)
            if not is_grey(rgb):
                return rgb, native
            pixels = luma(pixels)  # read_dicom_gray's grey, without reading the file again
        return square_resize(Image.fromarray(pixels), size), native
    with Image.open(path) as img:
        if img.mode in GREY_MODES:
            return _decode_grey(img, size)
        native = img.size
        if img.format == "JPEG":
            img.draft("RGB", (2 * size, 2 * size))
        img.load()
        rgb = square_resize_rgb(img, size)
    if not is_grey(rgb):
        return rgb, native
    return decode_file(path, size)


def resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) uint8 -> (N, size, size) uint8, image by image through Pillow; (N, H, W, 3) RGB
    -> (N, size, size, 3) alike."""
    if images.shape[1:3] == (size, size):
        return np.ascontiguousarray(images)
    colour = images.ndim == 4
    out = np.empty((len(images), size, size, *images.shape[3:]), dtype=np.uint8)
    for i, img in enumerate(images):
        picture = Image.fromarray(np.ascontiguousarray(img))
        out[i] = square_resize_rgb(picture, size) if colour else square_resize(picture, size)
    return out
