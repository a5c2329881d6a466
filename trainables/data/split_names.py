"""Which split a folder or a manifest's split value names: ``Training/`` is train, ``Valid`` is val.

Public data sets spell their splits many ways (Kaggle's brain MRI set ships ``Training/`` and
``Testing/``; others ``valid/`` or ``validation/``). The folder source and a CSV manifest's split
column read them through this one table, compared without regard to case, so both accept the same
names. Two folders that name one split (``train/`` and ``Training/``) are refused: picking one
would silently drop the other's images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import DataError

SPLITS = ("train", "val", "test")
#: Every accepted spelling of each split (compared in lower case).
SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
_SPLIT_OF = {alias: split for split, aliases in SPLIT_NAMES.items() for alias in aliases}


def split_of(name: str) -> str | None:
    """The split ``name`` stands for (``"Training"`` -> ``"train"``), or None when it names none."""
    return _SPLIT_OF.get(name.strip().lower())


def accepted_names(split: str | None = None) -> str:
    """The accepted spellings, for messages: ``train/training`` or all three splits'."""
    splits = (split,) if split else SPLITS
    return ", ".join("/".join(SPLIT_NAMES[s]) for s in splits)


def split_folders(root: Path) -> dict[str, str]:
    """split -> the subfolder of ``root`` that holds it (``{"train": "Training", ...}``).

    Raises ``DataError`` when two subfolders name one split. Subfolders that name no split are
    ignored here (the caller's layout error lists them).
    """
    found: dict[str, list[str]] = {}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        split = split_of(entry.name)
        if split is not None and entry.is_dir():
            found.setdefault(split, []).append(entry.name)
    clashes = {s: names for s, names in found.items() if len(names) > 1}
    if clashes:
        split, names = next(iter(clashes.items()))
        raise DataError(f"{root}: folders {', '.join(n + '/' for n in names)} all name the {split} split "
                        f"(accepted names, any case: {accepted_names(split)}); keep one of them")
    return {s: names[0] for s, names in found.items()}


def describe_split_sources(summary: dict[str, Any], val_fraction: float | None) -> str:
    """Where each split comes from, for ``medtune validate``: ``train <- Training/, val <- 10% of
    train (data.val_fraction), test <- Testing/``; empty for array sources (their keys say it)."""
    folders, values = summary.get("split_folders"), summary.get("split_values")
    if folders is None and values is None:
        return ""
    if folders is not None:
        origin = {split: f"{folder}/" for split, folder in folders.items()}
    else:
        origin = {split: "rows " + "/".join(repr(v) for v in found) for split, found in values.items()}
    if val_fraction is not None:
        origin["val"] = f"{val_fraction:g} of train, carved (data.val_fraction)"
    return ", ".join(f"{split} <- {origin[split]}" for split in SPLITS if split in origin)
