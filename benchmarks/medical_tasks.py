"""The tasks the decision and small-data benchmarks share: PneumoniaMNIST and the brain-MRI set, full and small.

A default must hold on more than one data set, so the benchmarks that choose one
(``operating_points.py``, ``small_data.py``) read the same tasks from here:

* ``pneumonia-full``: PneumoniaMNIST's official splits (4708 / 524 / 624), whose test split is
  shifted from val (``../shared/ENVIRONMENT.md``);
* ``pneumonia-small``: a stratified, seeded 546 / 78 subsample of its train and val (BreastMNIST's
  sizes), with the full test split;
* ``brain-full`` / ``brain-small``: the brain-tumour MRI set (``../shared/data/brain_tumor_mri``),
  seen as tumour (glioma, meningioma, pituitary) against ``notumor``; val is a stratified 10% of
  ``Training/`` and test is ``Testing/`` without the 216 files that are byte-identical to a training
  file (1,095 images); small: 546 / 78 of that train and val;
* ``brain4-full`` / ``brain4-small``: the same images with their four classes.

The brain views are Kermany-layout folders of symbolic links (``train/CLASS``, ``test/CLASS``) in a
work folder, read by medtune's own folder reader: every image decoded in one mode (grey levels), so
the storage mode that follows the class (its README) cannot leak into the pixels.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")
#: BreastMNIST's train / val sizes, the held-back set the small tasks mimic.
SMALL_TRAIN, SMALL_VAL = 546, 78
BRAIN_CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
BRAIN_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Task:
    """A data set as a trial config's ``data_*`` keys, with what a report needs to say about it."""

    name: str
    data: dict[str, Any]
    small: bool
    num_classes: int
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def data_dir() -> Path:
    """Where MedMNIST names and the brain-MRI folder resolve ($MEDTUNE_DATA_DIR, else ../shared/data)."""
    return Path(os.environ.get("MEDTUNE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def pneumonia_npz() -> Path:
    return data_dir() / "pneumoniamnist.npz"


def small_npz(path: str | Path, seed: int, train: int = SMALL_TRAIN, val: int = SMALL_VAL,
              out_dir: str | Path | None = None) -> Path:
    """A stratified, seeded subsample of ``path``'s train and val splits with its full test split.

    Written in the same layout (``{split}_images``, ``{split}_labels`` of shape (N, 1) uint8) as
    ``<out_dir>/small-s<seed>-<train>-<val>/<path's name>``: a MedMNIST file name keeps the class
    names (normal, pneumonia). Train and val draw from separate seed streams.
    """
    from medtune.trainables.data.splits import stratified_subset

    out = Path(out_dir or tempfile.mkdtemp(prefix="medtune-small-data-")) / f"small-s{seed}-{train}-{val}"
    out.mkdir(parents=True, exist_ok=True)
    target = out / Path(path).name
    if target.exists():
        return target
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    num_classes = int(max(arrays[f"{s}_labels"].max() for s in SPLITS)) + 1
    sizes = {"train": train, "val": val}
    written: dict[str, np.ndarray] = {}
    for stream, split in enumerate(SPLITS, start=1):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        idx = (stratified_subset(labels, sizes[split], [seed, stream], num_classes) if split in sizes
               else np.arange(len(labels)))
        written[f"{split}_images"] = images[idx]
        written[f"{split}_labels"] = labels[idx].reshape(-1, 1).astype(np.uint8)
    tmp = target.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **written)
    tmp.replace(target)
    return target


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def brain_view(work: Path, binary: bool) -> Path:
    """A Kermany-layout folder of links to the brain-MRI files: ``train/`` from ``Training/``, ``test/``
    from ``Testing/`` less its exact copies of training files; binary: ``tumor`` against ``notumor``."""
    root = work / ("brain-binary" if binary else "brain4")
    done = root / ".complete"
    if done.exists():
        return root
    source = (data_dir() / "brain_tumor_mri").resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: the brain-MRI set is not there (set MEDTUNE_DATA_DIR)")
    train_hashes = {_md5(p) for p in (source / "Training").rglob("*.jpg")}
    dropped = 0
    for split, folder in (("train", "Training"), ("test", "Testing")):
        for cls in BRAIN_CLASSES:
            target_cls = ("notumor" if cls == "notumor" else "tumor") if binary else cls
            out = root / split / target_cls
            out.mkdir(parents=True, exist_ok=True)
            for path in sorted((source / folder / cls).glob("*.jpg")):
                if split == "test" and _md5(path) in train_hashes:
                    dropped += 1
                    continue
                link = out / f"{cls}_{path.name}"
                if not link.exists():
                    link.symlink_to(path)
    (root / ".complete").write_text(f"dropped {dropped} test files identical to a training file\n")
    return root


def tasks(work: Path, seed: int, names: tuple[str, ...] | list[str]) -> list[Task]:
    """The named tasks for one seed (the small ones subsample with it)."""
    work.mkdir(parents=True, exist_ok=True)
    out: list[Task] = []
    for name in names:
        if name == "pneumonia-full":
            out.append(Task(name, {"data_source": str(pneumonia_npz())}, False, 2, "PneumoniaMNIST 4708/524/624"))
        elif name == "pneumonia-small":
            npz = small_npz(pneumonia_npz(), seed, SMALL_TRAIN, SMALL_VAL, out_dir=work / "data")
            out.append(Task(name, {"data_source": str(npz)}, True, 2, f"PneumoniaMNIST {SMALL_TRAIN}/{SMALL_VAL}/624"))
        elif name in ("brain-full", "brain-small", "brain4-full", "brain4-small"):
            root = brain_view(work / "data", binary=not name.startswith("brain4"))
            data: dict[str, Any] = {"data_source": str(root), "data_val_fraction": BRAIN_VAL_FRACTION,
                                    "data_split_seed": seed}
            small = name.endswith("small")
            if small:
                data.update(data_train_subset=SMALL_TRAIN, data_val_subset=SMALL_VAL)
            classes = 4 if name.startswith("brain4") else 2
            out.append(Task(name, data, small, classes, "brain MRI, test without its 216 train duplicates"))
        else:
            raise ValueError(f"unknown task {name!r}")
    return out


TASK_NAMES = ("pneumonia-full", "pneumonia-small", "brain-full", "brain-small", "brain4-full", "brain4-small")
