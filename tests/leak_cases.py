"""Small built data sets with known leaks, shared by the data-layer, spec and CLI tests.

``make_leaky_folder`` builds a brain-MRI-like folder (``Training/``, ``Testing/``) whose two classes
differ in how their files are stored (one class L JPEGs, the other RGB JPEGs that are grey inside,
like the real set's notumor), with copies of training images in ``Testing/``: byte copies, a PNG
re-encoding (equal decoded pixels) and a JPEG re-save at quality 60 (a near copy).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

#: What ``make_leaky_folder`` puts in ``Testing/glioma`` besides its own images.
BYTE_COPIES = 3
REENCODED = "reencoded.png"
RESAVED = "resaved.jpg"


def blob(rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A smooth random grey image: distinct from every other blob by its coarse layout."""
    coarse = rng.integers(0, 256, (6, 6)).astype(np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))


def make_leaky_folder(root: Path, train_per_class: int = 30, test_per_class: int = 10, leaks: bool = True,
                      splits: tuple[str, str] = ("Training", "Testing"), seed: int = 0) -> Path:
    """The folder described above; ``leaks=False`` leaves the copies out (storage modes still differ)."""
    rng = np.random.default_rng(seed)
    for split, count in zip(splits, (train_per_class, test_per_class)):
        for name in ("glioma", "notumor"):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = blob(rng)
                if name == "notumor":
                    img = Image.merge("RGB", [img, img, img])
                img.save(folder / f"{split[:2]}-{name[:2]}_{i:03d}.jpg", quality=95)
    if leaks:
        train, test = root / splits[0] / "glioma", root / splits[1] / "glioma"
        for i in range(BYTE_COPIES):
            shutil.copy(train / f"{splits[0][:2]}-gl_{i:03d}.jpg", test / f"copy_{i}.jpg")
        with Image.open(train / f"{splits[0][:2]}-gl_{BYTE_COPIES:03d}.jpg") as img:
            img.save(test / REENCODED)  # lossless: the same decoded pixels, other bytes and format
        with Image.open(train / f"{splits[0][:2]}-gl_{BYTE_COPIES + 1:03d}.jpg") as img:
            img.save(test / RESAVED, quality=60)  # lossy: a near copy
    return root
