"""Colour: whether a source is colour or grey, and how a colour image becomes grey levels.

**The data decides.** A source is read in one mode, decided once per node when it is decoded into
the cache: *colour* when any of its images is colour, *grey* when every image is grey. An image
stored grey (Pillow's ``L``, 16-bit, a ``MONOCHROME`` DICOM, an (N, H, W) array) is grey; an image
stored with three channels is grey too when they are equal within ``GREY_TOLERANCE``: its *mean
chroma* (the mean over its pixels of max(R, G, B) - min(R, G, B), in levels of 255), measured on the
decoded pixels, is at most ``GREY_TOLERANCE``.

Why the mean and not the largest difference: a grey image saved as an RGB JPEG is rarely exactly
R = G = B. Of the 3,926 RGB JPEGs of ``brain_tumor_mri`` (grey MRI slices), 98 have a pixel whose
channels differ by more than 2 levels (up to 209: a tinted watermark, JPEG colour bleeding), yet
their mean chroma is at most 5.5 levels (3.8 at 28 px). A colour image worth the name (stain, skin,
a fundus, a Doppler box over part of an ultrasound) has a mean chroma of tens of levels. So a
per-pixel rule would read that grey MRI set in colour, and the mean reads it grey, with room to spare.

A folder whose images are mixed (some colour, some grey) is read in colour, the grey ones repeated
to three equal channels, so every image reaches the model in the same mode: the storage mode can
never tell the model the class. ``channels: 1`` reads colour data as grey (luma) instead.
"""

from __future__ import annotations

import numpy as np

# ITU-R 601-2 luma, the weights Pillow's convert("L") and JPEG's Y channel use.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: Largest mean chroma (levels of 255) at which a three-channel image still counts as grey; see above.
GREY_TOLERANCE = 10.0


def rgb_to_gray(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H, W) uint8 by luma weights; chunked to bound float memory."""
    out = np.empty(images.shape[:3], dtype=np.uint8)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float32) @ LUMA_WEIGHTS
        out[start : start + chunk] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    return out


def luma(image: np.ndarray) -> np.ndarray:
    """One (H, W, 3) image as (H, W) uint8 grey levels, by the same weights as ``rgb_to_gray``."""
    return np.clip(np.rint(image.astype(np.float32) @ LUMA_WEIGHTS), 0, 255).astype(np.uint8)


def mean_chroma(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) float64: each image's mean of max - min over its three channels."""
    out = np.empty(len(images), dtype=np.float64)
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start : start + chunk])
        spread = block.max(axis=-1) - block.min(axis=-1)  # uint8: max >= min, no wrap-around
        out[start : start + chunk] = spread.reshape(len(block), -1).mean(axis=1)
    return out


def is_grey(image: np.ndarray) -> bool:
    """Whether one image (H, W) or (H, W, 1|3) counts as grey (``GREY_TOLERANCE``)."""
    if image.ndim == 2 or image.shape[-1] == 1:
        return True
    return bool(mean_chroma(image[None])[0] <= GREY_TOLERANCE)


def grey_to_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1) uint8 -> (N, H, W, 3): a grey image in a colour source."""
    grey = images[..., 0] if images.ndim == 4 else images
    return np.repeat(grey[..., None], 3, axis=-1)


def channels_of(images: np.ndarray) -> int:
    """How many channels a split's images (N, H, W, C) have: 1 (grey) or 3 (colour)."""
    return int(images.shape[-1]) if images.ndim == 4 else 1


def stack_in_mode(images: list[np.ndarray], size: int, channels: int) -> np.ndarray:
    """Decoded images, each (size, size) grey or (size, size, 3) RGB, as one (N, size, size, channels)
    uint8 array: in a colour source (3) a grey image is repeated to three equal channels."""
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = image[..., None] if image.ndim == 2 else image
    return out
