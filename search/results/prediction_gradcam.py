"""``medtune predict --gradcam DIR``: one heat map per image, where the model looked for the class it is about.

Each PNG is the image the model saw (grey, or in colour for a colour model; decoded and resized as
it was scored) under its Grad-CAM map (``medtune.trainables.gradcam``: the deepest stage with at
least 7x7 cells, as ``gradcam.png`` of ``medtune final``), in the jet colour scale from 0 (blue) to
the image's own peak (red). The map is of the positive class's score for a two-class model (what
the score and threshold are about) and of the predicted class otherwise. Small images are enlarged
(nearest neighbour) to at least ``MIN_SIDE`` px so the cells can be seen.

``DIR`` mirrors the input: ``DIR/<path relative to the input folder>.png``, or ``DIR/<index>.png``
for the rows of an ``.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Heat maps are drawn at least this many pixels on a side.
MIN_SIDE = 224
#: The map's share of each pixel's colour.
ALPHA = 0.45


def heatmap_path(folder: Path, key: str, key_name: str) -> Path:
    """Where the heat map of the image named ``key`` goes under ``folder``."""
    if key_name == "index":
        return folder / f"{int(key):06d}.png"
    relative = Path(key)
    if relative.is_absolute() or ".." in relative.parts or "://" in key:  # a file given by itself: its name
        relative = Path(relative.name)
    return folder / f"{relative}.png"


def overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the grey (H', W') or RGB (H', W', 3) ``image``, resized to the map's size,
    under the jet-coloured map."""
    from matplotlib import colormaps
    from PIL import Image

    h, w = heat.shape
    picture = np.asarray(image, dtype=np.uint8)
    if picture.shape[:2] != (h, w):
        picture = np.asarray(Image.fromarray(picture).resize((w, h), Image.Resampling.BILINEAR))
    base = picture / 255.0 if picture.ndim == 3 else (picture / 255.0)[..., None]
    colour = colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3]
    mixed = (1 - ALPHA) * base + ALPHA * colour
    return np.clip(np.rint(mixed * 255), 0, 255).astype(np.uint8)


def write_heatmap(path: Path, image: np.ndarray, heat: np.ndarray) -> None:
    """The overlay as a PNG at ``path`` (its folders created), enlarged to ``MIN_SIDE`` px or more."""
    from PIL import Image

    picture = Image.fromarray(overlay(image, heat))
    scale = max(1, -(-MIN_SIDE // max(picture.size)))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")
