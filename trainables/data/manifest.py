"""CSV manifests: a table with one image per row (its path, label, split and patient), as most
public medical sets ship (ISIC, CheXpert, ChestX-ray14, HAM10000).

``data.source: labels.csv`` with ``data.path_column`` (paths relative to the CSV's folder),
``data.label_columns`` (one categorical column: its distinct values are the classes),
``data.split_column`` (train/val/test, spelled as ``split_names`` accepts) and an optional
``data.group_column`` (a patient or study ID: carved splits and folds then keep each group whole).
The rows become a ``FolderIndex`` rooted at the CSV's folder, so images are decoded by the folder
source's readers (PNG, JPEG, DICOM) into the same decode cache.

Security: a manifest is someone else's file, and no path in it may leave its folder. An absolute
path, a drive letter, or ``..`` segments (or a symlink) that resolve outside the CSV's folder
refuse the whole manifest, naming the line, rather than reading ``/etc/...`` or a neighbour's data.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import DataConfig
from .errors import DataError, DataSettingError
from .folder import MAX_NAMED, FolderIndex
from .split_names import SPLITS, accepted_names, split_of

MANIFEST_SUFFIX = ".csv"
_DRIVE = re.compile(r"^[A-Za-z]:")


def is_manifest(source: str) -> bool:
    """Whether ``source`` (a path or an s3:// URI) names a CSV manifest."""
    return source.strip().lower().endswith(MANIFEST_SUFFIX)


@dataclass(frozen=True)
class ManifestIndex:
    """A manifest's rows as a folder index (rooted at the CSV's folder), plus what a folder has not."""

    csv: Path
    folder: FolderIndex
    #: split -> each row's group (``group_column``), in row order; None without a group column.
    groups: dict[str, np.ndarray] | None
    #: split -> the split column's values that mapped to it (``{"train": ["Training"]}``).
    split_values: dict[str, list[str]]


def _setting(setting: str, csv_path: Path, why: str) -> DataSettingError:
    return DataSettingError(setting, f"{csv_path}: {why} (data.{setting})")


def _read_rows(csv_path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row)]); a CSV that cannot be read is a ``DataError`` naming it."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected a CSV manifest "
                        "saved as UTF-8") from None
    except (csv.Error, OSError) as exc:
        raise DataError(f"{csv_path}: cannot read it as a CSV manifest: {exc}") from None
    if not header:
        raise DataError(f"{csv_path}: empty; expected a CSV manifest with a header row and one row per image")
    return header, rows


def _column(cfg: DataConfig, setting: str, header: list[str], csv_path: Path, required: bool) -> str | None:
    name = getattr(cfg, setting)
    if name is None:
        if required:
            raise _setting(setting, csv_path, f"a CSV manifest needs data.{setting}; its columns are {header}")
        return None
    if name not in header:
        raise _setting(setting, csv_path, f"no column {name!r}; its columns are {header}")
    return name


def inside(root: Path, value: str, csv_path: Path, line: int, base: Path | None = None) -> str:
    """``value`` as a normalised path relative to ``root``; refused when it would leave ``root``
    (``base``: ``root`` resolved, when the caller has it already)."""
    text = value.strip().replace("\\", "/")
    if not text:
        raise _setting("path_column", csv_path, f"line {line}: empty image path")
    relative = posixpath.normpath(text)
    escapes = (text.startswith("/") or _DRIVE.match(text) is not None or relative == ".."
               or relative.startswith("../"))
    if not escapes:
        base = base or root.resolve()
        escapes = not (base / relative).resolve().is_relative_to(base)  # a symlink that leads out
    if escapes:
        raise _setting("path_column", csv_path, f"line {line}: image path {value!r} leads outside the manifest's "
                       f"folder {root}; refusing the manifest (paths must be relative to the CSV's folder and stay "
                       "inside it)")
    return relative


def _class_names(values: set[str]) -> tuple[str, ...]:
    """The classes in a stable order: numerically when every label is an integer (0, 1, ..., 10)."""
    if all(re.fullmatch(r"-?\d+", v) for v in values):
        return tuple(sorted(values, key=int))
    return tuple(sorted(values))


#: What a multi-label manifest's 0/1 columns may hold, and the finding each value means.
_FINDING_VALUES = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}


def _label_columns(cfg: DataConfig, header: list[str], csv_path: Path) -> tuple[str, ...]:
    """The label columns, each checked to be in the header: one categorical column, or several 0/1
    columns (one finding each: a multi-label task, ``medtune.trainables.data.task``)."""
    names = cfg.label_column_names
    if not names:
        raise _setting("label_columns", csv_path, f"a CSV manifest needs data.label_columns; its columns are {header}")
    absent = [name for name in names if name not in header]
    if absent:
        raise _setting("label_columns", csv_path, f"no column {absent[0]!r}; its columns are {header}")
    return names


def _row_label(row: dict[str, str], columns: tuple[str, ...], csv_path: Path, line: int) -> str:
    """The row's label: the categorical column's value, or the findings of several 0/1 columns
    as one comma-joined string of 0s and 1s (decoded to a tuple by ``_indexed``)."""
    values = [(row.get(column) or "").strip() for column in columns]
    for column, value in zip(columns, values):
        if not value:
            raise _setting("label_columns", csv_path, f"line {line}: no label in column {column!r}")
        if len(columns) > 1 and value not in _FINDING_VALUES:
            raise _setting("label_columns", csv_path, f"line {line}: {value!r} in column {column!r}; several label "
                           "columns are read as multi-label findings, each 0 (absent) or 1 (present)")
    return values[0] if len(columns) == 1 else ",".join(str(_FINDING_VALUES[v]) for v in values)


def index_manifest(csv_path: Path, cfg: DataConfig, need_val: bool) -> ManifestIndex:
    """Read and check the manifest, and list its images; cheap (the CSV and a stat per image)."""
    header, rows = _read_rows(csv_path)
    path_col = _column(cfg, "path_column", header, csv_path, required=True)
    label_cols = _label_columns(cfg, header, csv_path)
    split_col = _column(cfg, "split_column", header, csv_path, required=False)
    group_col = _column(cfg, "group_column", header, csv_path, required=False)
    if split_col is None:
        raise _setting("split_column", csv_path, "without a split column every row would be a training image and "
                       f"there would be no test split; add a column of {accepted_names()} per row and name it in "
                       "data.split_column (val may be carved from train with data.val_fraction)")
    if not rows:
        raise DataError(f"{csv_path}: no rows under the header; expected one row per image")
    root, base = csv_path.parent, csv_path.parent.resolve()
    parsed: dict[str, list[tuple[str, str, str]]] = {s: [] for s in SPLITS}  # split -> (path, label, group)
    split_values: dict[str, set[str]] = {s: set() for s in SPLITS}
    for line, row in rows:
        label = _row_label(row, label_cols, csv_path, line)
        raw_split = (row.get(split_col) or "").strip()
        split = split_of(raw_split)
        if split is None:
            raise _setting("split_column", csv_path, f"line {line}: split {raw_split!r} in column {split_col!r} "
                           f"is none of {accepted_names()} (any case)")
        group = (row.get(group_col) or "").strip() if group_col else ""
        relative = inside(root, row.get(path_col) or "", csv_path, line, base)
        parsed[split].append((relative, label, group or f"<row {line}>"))  # no ID: the row is its own group
        split_values[split].add(raw_split)
    class_names = (label_cols if len(label_cols) > 1
                   else _class_names({label for entries in parsed.values() for _, label, _ in entries}))
    return _indexed(csv_path, cfg, need_val, parsed, class_names, group_col is not None,
                    {s: sorted(v) for s, v in split_values.items() if v})


def _indexed(csv_path: Path, cfg: DataConfig, need_val: bool, parsed: dict[str, list[tuple[str, str, str]]],
             class_names: tuple[str, ...], grouped: bool, split_values: dict[str, list[str]]) -> ManifestIndex:
    """The parsed rows checked (splits, classes, files) and listed as a ``FolderIndex``."""
    for split in ("train", "test") + (("val",) if need_val else ()):
        if not parsed[split]:
            hint = "; set data.val_fraction to carve val out of train" if split == "val" else ""
            raise _setting("split_column", csv_path, f"no {split} rows ({accepted_names(split)}){hint}")
    if len(cfg.label_column_names) > 1:
        return _indexed_findings(csv_path, cfg, parsed, class_names, grouped, split_values)
    if len(class_names) < 2:
        raise _setting("label_columns", csv_path, f"found {len(class_names)} class ({', '.join(class_names)}) in "
                       f"column {cfg.label_columns!r}; expected at least two classes to tell apart")
    label_of = {name: i for i, name in enumerate(class_names)}
    lacking = sorted(set(class_names) - {label for _, label, _ in parsed["train"]})
    if lacking:
        raise _setting("label_columns", csv_path, f"classes {lacking} have no train rows; every class needs "
                       "training images")
    return _listed(csv_path, cfg, parsed, class_names, grouped, split_values,
                   lambda label: label_of[label])


def _indexed_findings(csv_path: Path, cfg: DataConfig, parsed: dict[str, list[tuple[str, str, str]]],
                      class_names: tuple[str, ...], grouped: bool,
                      split_values: dict[str, list[str]]) -> ManifestIndex:
    """A multi-label manifest listed: each row's label is the tuple of its 0/1 findings. A finding
    with no positive training row cannot be learnt, so it is refused, named."""
    positives = np.zeros(len(class_names), dtype=np.int64)
    for _, label, _ in parsed["train"]:
        positives += np.array(label.split(","), dtype=np.int64)
    lacking = [name for name, n in zip(class_names, positives) if n == 0]
    if lacking:
        raise _setting("label_columns", csv_path, f"findings {lacking} have no positive train rows; every finding "
                       "needs training images that show it")
    return _listed(csv_path, cfg, parsed, class_names, grouped, split_values,
                   lambda label: tuple(int(v) for v in label.split(",")))


def _listed(csv_path: Path, cfg: DataConfig, parsed: dict[str, list[tuple[str, str, str]]],
            class_names: tuple[str, ...], grouped: bool, split_values: dict[str, list[str]],
            label_of: Callable[[str], Any]) -> ManifestIndex:
    """The rows as a ``FolderIndex`` (each file stat'ed: missing ones within ``max_bad_fraction``)."""
    root = csv_path.parent
    st = csv_path.stat()
    identity: list[tuple[str, int, int]] = [
        (f"manifest:{cfg.path_column}:{cfg.label_columns}:{cfg.split_column}", st.st_size, st.st_mtime_ns)]
    files: dict[str, list[tuple[str, Any]]] = {}
    missing: list[str] = []
    for split, entries in parsed.items():
        if not entries:
            continue
        files[split] = []
        for relative, label, _ in entries:
            try:
                file_stat = os.stat(root / relative)
                identity.append((relative, file_stat.st_size, file_stat.st_mtime_ns))
            except OSError:
                missing.append(relative)  # decoding counts it as unreadable, under max_bad_fraction
                identity.append((relative, -1, -1))
            files[split].append((relative, label_of(label)))
    total = sum(len(v) for v in files.values())
    if len(missing) > cfg.max_bad_fraction * total:
        named = ", ".join(missing[:MAX_NAMED]) + (f" and {len(missing) - MAX_NAMED} more"
                                                   if len(missing) > MAX_NAMED else "")
        raise _setting("path_column", csv_path, f"{len(missing)} of {total} image paths in column "
                       f"{cfg.path_column!r} are not files under {root}: {named}; paths are relative to the "
                       f"CSV's folder (more than data.max_bad_fraction={cfg.max_bad_fraction:g})")
    groups = ({s: np.array([g for _, _, g in parsed[s]], dtype=str) for s in files} if grouped else None)
    folder = FolderIndex(root=root, class_names=class_names, files=files, identity=identity)
    return ManifestIndex(csv=csv_path, folder=folder, groups=groups, split_values=split_values)


def decoded_groups(index: ManifestIndex, bad_files: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Each decoded image's group: the index's rows less the unreadable files the decoder skipped."""
    if index.groups is None:
        return None
    bad = set(bad_files)
    return {split: index.groups[split][np.array([rel not in bad for rel, _ in files], dtype=bool)]
            for split, files in index.folder.files.items()}


def stage_manifest(uri: str, cache_dir: Path) -> Path:
    """An ``s3://bucket/prefix/labels.csv`` staged with its folder (the images it names are relative to it)."""
    from .staging import stage_s3

    folder_uri, _, name = uri.strip().rpartition("/")
    local = stage_s3(folder_uri + "/", cache_dir)
    csv_path = local / name
    if not csv_path.is_file():
        raise DataError(f"{uri}: no such object; expected the CSV manifest there")
    return csv_path
