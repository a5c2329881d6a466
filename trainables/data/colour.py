"""Colour: how a colour image becomes grey levels, the same way for every reader (npz, folders, DICOM)."""

from __future__ import annotations

import numpy as np

# ITU-R 601-2 luma, the weights Pillow's convert("L") and JPEG's Y channel use.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def rgb_to_gray(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H, W) uint8 by luma weights; chunked to bound float memory."""
    out = np.empty(images.shape[:3], dtype=np.uint8)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float32) @ LUMA_WEIGHTS
        out[start : start + chunk] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    return out
