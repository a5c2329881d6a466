"""Kermany-layout folders: ROOT/{train,val,test}/<CLASS>/*.jpeg|jpg|png, decoded once to arrays.

Split folders may be spelled as public data sets spell them (``Training/``, ``valid/``,
``Testing/``: ``split_names``); the index records which folder was taken for which split.
A class folder is read recursively, as torchvision's ``ImageFolder`` does: images in its
subfolders (``NORMAL/batch2/*.jpeg``) belong to the class too. Hidden files and folders are skipped.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from medtune.trainables.progress import progress

from .cache import Decoded
from .colour import stack_in_mode
from .dicom import DICOM_EXTS
from .errors import DataError
from .image_facts import facts_columns, file_facts
from .imaging import decode_file_colour
from .split_names import accepted_names, split_folders

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
IMAGE_EXTS = frozenset({".jpeg", ".jpg", ".png"}) | DICOM_EXTS
MAX_NAMED = 10


@dataclass(frozen=True)
class FolderIndex:
    """The listing of a Kermany folder: no pixels read yet."""

    root: Path
    class_names: tuple[str, ...]
    #: split -> [(path relative to root, label)]; a multi-label manifest's label is a tuple of 0/1 findings.
    files: dict[str, list[tuple[str, Any]]]
    identity: list[tuple[str, int, int]]  # (relative path, size, mtime_ns): cache key material
    split_dirs: dict[str, str] = field(default_factory=dict)  # split -> the folder taken for it ("Training")

    def labels(self, split: str) -> np.ndarray:
        return labels_of(self.files[split], range(len(self.files[split])))


def labels_of(files: list[tuple[str, Any]], rows: Iterable[int]) -> np.ndarray:
    """The labels of ``files[rows]``: (N,) class indices, or (N, L) 0/1 findings when the labels are
    tuples (a multi-label manifest), kept (0, L) when no row is left."""
    width = len(files[0][1]) if files and isinstance(files[0][1], tuple) else None
    labels = np.array([files[i][1] for i in rows], dtype=np.int64)
    return labels if width is None else labels.reshape(-1, width)


def _hidden(name: str) -> bool:
    # Kermany zips carry macOS junk: .DS_Store, ._foo.jpeg, __MACOSX/.
    return name.startswith((".", "__"))


def _layout_error(root: Path, why: str) -> DataError:
    try:
        subdirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    except OSError:
        subdirs = []
    hint = ""
    nested = [d for d in subdirs if _has_train_and_test(root / d)]
    if nested:
        hint = f" Did you mean {root / nested[0]}?"
    return DataError(f"{root}: {why}. Expected a Kermany-layout folder ROOT/{{train,test}}/<CLASS>/*.jpeg "
                     f"(val/ optional; split folders may be named {accepted_names()}, any case); "
                     f"found subfolders {subdirs}.{hint}")


def _has_train_and_test(folder: Path) -> bool:
    try:
        return {"train", "test"} <= set(split_folders(folder))
    except (DataError, OSError):
        return False


def class_files(class_dir: str) -> list[tuple[str, os.stat_result]]:
    """(path relative to the class folder, stat) of every image under it, subfolders included, sorted."""
    found = []
    for folder, subfolders, names in os.walk(class_dir):
        subfolders[:] = [d for d in subfolders if not _hidden(d)]
        for name in names:
            if not _hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTS:
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    found.append((os.path.relpath(path, class_dir).replace(os.sep, "/"), os.stat(path)))
    return sorted(found, key=lambda item: item[0])


def _scan_split(root: Path, folder: str) -> dict[str, list[tuple[str, os.stat_result]]]:
    split_dir = root / folder
    classes: dict[str, list[tuple[str, os.stat_result]]] = {}
    loose: list[str] = []
    with os.scandir(split_dir) as entries:
        for entry in entries:
            if _hidden(entry.name):
                continue
            if entry.is_dir():
                classes[entry.name] = class_files(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTS:
                loose.append(entry.name)
    if loose:
        raise DataError(f"{split_dir}: found images directly in the split folder (e.g. {loose[:3]}); "
                        "expected them inside one subfolder per class, e.g. NORMAL/ and PNEUMONIA/")
    if not classes:
        raise DataError(f"{split_dir}: no class subfolders; expected one folder per class, e.g. NORMAL/ and PNEUMONIA/")
    return classes


def index_folder(root: Path, need_val: bool) -> FolderIndex:
    """Check the layout and list the image files; cheap (directory listings and stats only)."""
    if not root.is_dir():
        raise DataError(f"{root}: expected a Kermany-layout folder, but it is not a directory")
    folders = split_folders(root)
    missing = [s for s in ("train", "test") if s not in folders]
    if missing:
        raise _layout_error(root, f"missing split folder(s) {[s + '/' for s in missing]}")
    if "val" not in folders and need_val:
        raise DataError(f"{root}: has no val/ folder ({accepted_names('val')}); set DataConfig.val_fraction to "
                        f"carve a validation split out of {folders['train']}/")
    present = [s for s in SPLITS if s in folders]
    scans = {s: _scan_split(root, folders[s]) for s in present}

    class_names = tuple(sorted(scans["train"]))
    for split in present:
        names = set(scans[split])
        if names != set(class_names):
            extra, lacking = sorted(names - set(class_names)), sorted(set(class_names) - names)
            raise DataError(f"{root / folders[split]}: class folders {sorted(names)} differ from "
                            f"{folders['train']}/ {list(class_names)}"
                            f" (unknown: {extra}, missing: {lacking}); every split needs the same class folders")
    if len(class_names) < 2:
        raise DataError(f"{root / folders['train']}: expected at least 2 class folders, found {list(class_names)}")

    files: dict[str, list[tuple[str, int]]] = {}
    identity: list[tuple[str, int, int]] = []
    for split in present:
        files[split] = []
        for label, name in enumerate(class_names):
            for relative, st in scans[split][name]:
                rel = f"{folders[split]}/{name}/{relative}"
                files[split].append((rel, label))
                identity.append((rel, st.st_size, st.st_mtime_ns))
        if not files[split] and (split != "val" or need_val):
            raise DataError(f"{root / folders[split]}: empty split; expected image files "
                            f"({', '.join(sorted(IMAGE_EXTS))}) in its class folders {list(class_names)}")
    for label, name in enumerate(class_names):
        if not any(lab == label for _, lab in files["train"]):
            raise DataError(f"{root / folders['train'] / name}: no images; every class needs training images")
    return FolderIndex(root=root, class_names=class_names, files=files, identity=identity,
                       split_dirs={s: folders[s] for s in present})


#: Images smaller than this on a side carry almost nothing once upsampled: they are warned about.
TINY_SIDE = 16


def _decode_one(args: tuple[str, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    path, size = args
    try:
        return decode_file_colour(path, size)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable file", counted below
        log.debug("Unreadable image %s: %s", path, exc)
        return None


def decode_folder(index: FolderIndex, image_size: int) -> Decoded:
    """Decode every listed file (threads: Pillow releases the GIL), skipping unreadable ones; in
    colour when any image is colour, else in grey (``colour.py``)."""
    workers = max(1, min(8, os.cpu_count() or 1))
    decoded: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
    bad: list[str] = []
    tiny: list[str] = []
    evidence: dict[str, dict[str, np.ndarray]] = {}  # file properties for the leakage checks (image_facts.py)
    total = 0
    count = sum(len(files) for files in index.files.values())
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            progress(total=count, desc=f"decoding {index.root.name} at {image_size} px", unit="image") as bar:
        for split, files in index.files.items():
            jobs = [(str(index.root / rel), image_size) for rel, _ in files]
            results = []
            for result in pool.map(_decode_one, jobs, chunksize=32):
                results.append(result)
                bar.update(1)
            ok = [i for i, r in enumerate(results) if r is not None]
            bad.extend(files[i][0] for i, r in enumerate(results) if r is None)
            tiny.extend(files[i][0] for i in ok if min(results[i][1]) < TINY_SIDE)
            total += len(files)
            labels = labels_of(files, ok)
            decoded[split] = ([results[i][0] for i in ok], labels)
            facts = list(pool.map(file_facts, [jobs[i][0] for i in ok], chunksize=32))
            evidence[split] = facts_columns([files[i][0] for i in ok], facts)
    colour_images = sum(image.ndim == 3 for pixels, _ in decoded.values() for image in pixels)
    channels = 3 if colour_images else 1
    splits = {split: (stack_in_mode(pixels, image_size, channels), labels)
              for split, (pixels, labels) in decoded.items()}
    log.info("Decoded %s at %d px (%s): %s (%d unreadable)", index.root, image_size,
             "colour" if channels == 3 else "grey", {k: len(v[1]) for k, v in splits.items()}, len(bad))
    return Decoded(splits=splits, class_names=index.class_names, bad_files=tuple(bad), total_files=total,
                   tiny_files=tuple(tiny), evidence=evidence, channels=channels, colour_images=colour_images)


def describe_bad(root: Path, bad: tuple[str, ...] | list[str], total: int) -> str:
    """'N of M images unreadable: a, b, ... and K more' for one warning or error line."""
    named = ", ".join(str(root / b) for b in bad[:MAX_NAMED])
    more = f" and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
    return f"{len(bad)} of {total} images under {root} are unreadable: {named}{more}"
