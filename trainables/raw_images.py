"""Raw images as a model gets them: files, encoded bytes or pixel arrays, decoded by the data path's own readers.

A prediction is only the report's prediction if the image reached the model exactly as the test
images did. So nothing here re-implements decoding; each kind of raw image goes through the reader
training uses for it:

* a file (JPEG, PNG, DICOM with its modality LUT, window and MONOCHROME1): ``imaging.decode_file``,
  as a folder source decodes it (centre crop, Pillow's bilinear resize, JPEG draft decoding);
* encoded bytes (an HTTP request's PNG): written to a temporary file and decoded by that same
  ``decode_file``, so a PNG sent to a server gives what the same PNG in a folder gives (DICOM
  bytes, recognised by their ``DICM`` preamble, too);
* a pixel array (uint8, any size, grey or colour): as an ``.npz`` source decodes its arrays:
  for a grey model colour to grey by ``colour.rgb_to_gray``, for a colour model RGB kept (and grey
  repeated to three channels), then ``imaging.resize_stack``.

Every reader takes the model's ``channels`` (what its training images were decoded to: 1 grey, 3
colour) and yields the (size, size) grey or (size, size, 3) RGB uint8 image the data path stores
for such a source (a colour folder: ``imaging.decode_file_colour``, its grey files repeated);
``inference`` batches it with ``make_batches``.

Also here: what a table of raw images may look like (``raw_items``: the MLflow model's input) and
the listing of a folder of images (recursive, hidden files skipped: the folder source's own listing).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from medtune.trainables.data.colour import grey_to_rgb, rgb_to_gray
from medtune.trainables.data.dicom import DICOM_EXTS
from medtune.trainables.data.folder import (
    IMAGE_EXTS,
    class_files,  # the folder source's own listing
)
from medtune.trainables.data.imaging import decode_file, decode_file_colour, resize_stack

#: The column of a table that holds the images (any single column is taken too).
IMAGE_COLUMN = "image"
#: Channel counts an array may have (last axis): grey, grey, RGB, RGBA (alpha dropped, as Pillow does).
ARRAY_CHANNELS = (1, 3, 4)
#: What a model's images may be decoded to: grey, or RGB colour.
IMAGE_CHANNELS = (1, 3)
#: DICOM files carry "DICM" after a 128-byte preamble.
_DICOM_MAGIC_OFFSET = 128


class RawImageError(ValueError):
    """An image that cannot become a model input; the message names it and says what was expected."""


def list_images(folder: str | Path) -> list[str]:
    """Every image file under ``folder`` (JPEG, PNG, DICOM), recursively, hidden files and folders
    skipped, as paths relative to it with ``/``, sorted: the folder source's listing."""
    return [relative for relative, _ in class_files(str(folder))]


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def decode_path(path: str | Path, size: int, channels: int = 1) -> np.ndarray:
    """A file as the uint8 image a folder source stores: (size, size) grey for a grey model; for a
    colour one (size, size, 3) RGB, a grey file repeated to three channels. Raises on unreadable files."""
    if channels == 1:
        return decode_file(str(path), size)[0]
    image = decode_file_colour(str(path), size)[0]
    return grey_to_rgb(image[None])[0] if image.ndim == 2 else image


def _suffix_for(data: bytes) -> str:
    if data[_DICOM_MAGIC_OFFSET:_DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return sorted(DICOM_EXTS)[0]
    return ".img"  # Pillow recognises PNG and JPEG by their content, not by the name


def decode_bytes(data: bytes, size: int, scratch: str | Path | None = None, channels: int = 1) -> np.ndarray:
    """Encoded bytes (PNG, JPEG or DICOM) decoded exactly as the same file in a folder would be.

    ``decode_file`` reads paths (DICOM by suffix, JPEG's draft mode by Pillow's file handle), so the
    bytes go through a temporary file in ``scratch`` (a folder; the system's temp folder if None)."""
    if not data:
        raise RawImageError("empty bytes; expected an encoded PNG, JPEG or DICOM image")
    handle, name = tempfile.mkstemp(suffix=_suffix_for(data), dir=scratch)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        return decode_path(name, size, channels)
    finally:
        os.unlink(name)


def decode_array(image: Any, size: int, channels: int = 1) -> np.ndarray:
    """A pixel array (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped) of values
    0..255 as the uint8 image an ``.npz`` source stores: for a grey model (size, size), colour to grey
    by luma; for a colour model (size, size, 3), grey repeated to three channels; then the same resize."""
    array = np.asarray(image)
    if array.dtype.kind not in "ui" and array.dtype != np.bool_:
        raise RawImageError(f"dtype {array.dtype}: expected an integer (uint8) array of 0..255")
    if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
        raise RawImageError(f"values {int(array.min())}..{int(array.max())}: expected 0..255 (uint8)")
    if array.ndim == 3 and array.shape[2] not in ARRAY_CHANNELS:
        raise RawImageError(f"shape {array.shape}: {array.shape[2]} channels cannot be converted to the model's "
                            f"{'grey' if channels == 1 else 'colour'} input; expected (H, W), (H, W, 1), "
                            "(H, W, 3) RGB or (H, W, 4) RGBA")
    if array.ndim not in (2, 3) or min(array.shape[:2], default=0) < 1:
        raise RawImageError(f"shape {array.shape}: expected one image shaped (H, W), (H, W, 1), (H, W, 3) or "
                            "(H, W, 4)")
    array = array.astype(np.uint8, copy=False)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if channels == 1:
        if array.ndim == 3:
            array = rgb_to_gray(array[None, ..., :3])[0]
        return resize_stack(array[None], size)[0]
    rgb = grey_to_rgb(array[None])[0] if array.ndim == 2 else np.ascontiguousarray(array[..., :3])
    return resize_stack(rgb[None], size)[0]


def decode_item(item: Any, size: int, scratch: str | Path | None = None, channels: int = 1) -> np.ndarray:
    """One raw image of any accepted kind: bytes, a base64 string of them, a path, or a pixel array,
    decoded for a model of ``channels`` (1 grey, 3 colour)."""
    if channels not in IMAGE_CHANNELS:
        raise ValueError(f"channels={channels}: expected one of {IMAGE_CHANNELS}")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(item), size, scratch, channels)
    if isinstance(item, Path):
        return decode_path(item, size, channels)
    if isinstance(item, str):
        return decode_bytes(_base64(item), size, scratch, channels)
    return decode_array(item, size, channels)


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise RawImageError(f"a string that is not base64 ({exc}); expected the image's bytes, base64-encoded") \
            from None


# --- the MLflow model's input -------------------------------------------------------------------


def raw_items(model_input: Any) -> list[Any]:
    """The images of a prediction request, one item per image (bytes, base64 text or an array).

    Accepted: a table (pandas DataFrame, or a dict of columns) with an ``image`` column (or a single
    column) of bytes, base64 strings or arrays; a list of such items; one bytes object; a numpy
    array: 2-D is one grey image, 3-D is one image (H, W, C) when its last axis has at most 4
    entries and else a batch of grey images (N, H, W), 4-D a batch (N, H, W, C); an object array
    holds items."""
    if hasattr(model_input, "columns") and hasattr(model_input, "__getitem__"):  # a pandas DataFrame
        columns = [str(c) for c in model_input.columns]
        return list(model_input[_image_column(columns)].tolist())
    if isinstance(model_input, dict):
        return list(model_input[_image_column([str(k) for k in model_input])])
    if isinstance(model_input, (bytes, bytearray, str)):
        return [model_input]
    if isinstance(model_input, np.ndarray):
        if model_input.dtype == object:
            return list(model_input.reshape(-1)) if model_input.ndim <= 1 else list(model_input[:, 0])
        if model_input.ndim == 2 or (model_input.ndim == 3 and model_input.shape[-1] <= max(ARRAY_CHANNELS)):
            return [model_input]  # (H, W, C): channels are few; a grey batch (N, H, W) has images wider than 4 px
        if model_input.ndim in (3, 4):
            return list(model_input)
        raise RawImageError(f"an array shaped {model_input.shape}: expected one image (H, W) or (H, W, C), or a "
                            "batch (N, H, W) or (N, H, W, C)")
    if isinstance(model_input, Sequence):
        return list(model_input)
    raise RawImageError(f"input of type {type(model_input).__name__}: expected a DataFrame with an {IMAGE_COLUMN!r} "
                        "column, a list of images, bytes, or a numpy array")


def _image_column(columns: list[str]) -> str:
    if IMAGE_COLUMN in columns:
        return IMAGE_COLUMN
    if len(columns) == 1:
        return columns[0]
    raise RawImageError(f"columns {columns}: expected an {IMAGE_COLUMN!r} column holding the images "
                        "(bytes, base64 strings or arrays)")


def stack(images: Iterable[np.ndarray], size: int, channels: int = 1) -> np.ndarray:
    """Decoded (size, size) grey or (size, size, 3) RGB images as the (N, size, size, channels) uint8
    array a split holds."""
    images = list(images)
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = image[..., None] if image.ndim == 2 else image
    return out


def encode_png(image: np.ndarray) -> bytes:
    """A (H, W), (H, W, 1) grey or (H, W, 3) RGB uint8 image as PNG bytes (lossless)."""
    import io

    from PIL import Image

    array = np.asarray(image, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array).save(buffer, format="PNG")
    return buffer.getvalue()
