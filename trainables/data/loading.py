"""The entry points: a cheap `inspect_source` and the cached `check_leakage` for `medtune validate`,
and `load_splits` for trials."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .cache import Decoded, cache_key, load_or_decode
from .classes import order_with_positive_last
from .config import MANIFEST_SETTINGS, DataConfig, resolve_cache_dir, resolve_data_dir
from .errors import DataError, DataSettingError, TooManyBadImages
from .folder import decode_folder, describe_bad, index_folder
from .leakage import LeakReport, drop_copies, planned_views, run_checks
from .manifest import decoded_groups, index_manifest, is_manifest, stage_manifest
from .medmnist import MEDMNIST, is_medmnist_name, resolve_medmnist
from .npz import decode_npz, index_npz
from .splits import DatasetSplits, SplitArrays, plan_indices, stratum_key, take
from .staging import is_s3_uri, stage_s3
from .task import MULTILABEL, ORDINAL, check_task, grade_order, leading_integers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Source:
    kind: Literal["npz", "folder", "manifest"]
    path: Path


def absolute_source(source: str) -> str:
    """``source`` with a local path made absolute (against the current folder); MedMNIST names and
    ``s3://`` URIs unchanged. The sweep driver calls this, so that a relative ``data.source`` means
    the same folder in every trial, whose working directory is Ray's, not the user's."""
    src = source.strip()
    path = Path(src).expanduser()
    if is_s3_uri(src) or (is_medmnist_name(src) and not path.exists()):
        return source
    return str(path.absolute())


def _resolve(cfg: DataConfig) -> _Source:
    """The source located (``_locate``), with the CSV settings refused where no CSV reads them."""
    source = _locate(cfg)
    given = [name for name in MANIFEST_SETTINGS if getattr(cfg, name) is not None]
    if given and source.kind != "manifest":
        raise DataSettingError(given[0], f"{source.path}: data.{given[0]} applies to CSV manifests "
                               f"(data.source: labels.csv); this source is a{'n' if source.kind == 'npz' else ''} "
                               f"{source.kind}")
    return source


def _locate(cfg: DataConfig) -> _Source:
    """MedMNIST name -> its .npz (downloaded if missing); s3:// -> staged into the node's cache;
    otherwise an existing .npz file, .csv manifest or folder."""
    src = cfg.source.strip()
    if is_s3_uri(src) and is_manifest(src):
        return _Source("manifest", stage_manifest(src, resolve_cache_dir(cfg.cache_dir)))
    if is_s3_uri(src):
        path = stage_s3(src, resolve_cache_dir(cfg.cache_dir))
        return _Source("folder" if path.is_dir() else "npz", path)
    path = Path(src).expanduser()
    if is_medmnist_name(src) and not path.exists():
        return _Source("npz", resolve_medmnist(src, resolve_data_dir(cfg.data_dir), cfg.image_size).resolve())
    if not path.exists():
        raise DataError(f"{path.absolute()}: source does not exist; expected a MedMNIST name "
                        f"({', '.join(sorted(MEDMNIST))}), "
                        "a path to an .npz file, a .csv manifest or a Kermany-layout folder")
    path = path.resolve()
    if path.is_dir():
        return _Source("folder", path)
    if is_manifest(str(path)):
        return _Source("manifest", path)
    if path.suffix.lower() != ".npz":
        kind = path.suffix or "suffix-less"
        raise DataError(f"{path}: expected an .npz file, a .csv manifest or a Kermany-layout folder, "
                        f"got a {kind} file")
    return _Source("npz", path)


def inspect_source(cfg: DataConfig) -> dict[str, Any]:
    """Validate a source without decoding its images; return counts per split and class.

    Raises DataError for anything `load_splits` would trip over (layout, keys, lengths, empty
    splits, a missing val without val_fraction), so sweeps fail before the first trial.
    A missing MedMNIST file is downloaded here, once, rather than by every trial.
    Unreadable image files are only found by decoding; `load_splits` reports them.
    """
    source = _resolve(cfg)
    need_val = cfg.val_fraction is None
    summary: dict[str, Any] = {"kind": source.kind, "source": cfg.source, "path": str(source.path)}
    groups = None
    if source.kind == "npz":
        nindex = index_npz(source.path, need_val)
        labels, class_names = nindex.labels, nindex.class_names
        summary["native_shape"] = {k: list(v[1:]) for k, v in nindex.image_shapes.items()}
    elif source.kind == "manifest":
        mindex = index_manifest(source.path, cfg, need_val)
        labels = {s: mindex.folder.labels(s) for s in mindex.folder.files}
        class_names, groups = mindex.folder.class_names, mindex.groups
        summary["split_values"] = {s: mindex.split_values[s] for s in labels}  # split <- the CSV's values
        if groups is not None:
            summary["groups"] = int(len(np.unique(np.concatenate(list(groups.values())))))
    else:
        findex = index_folder(source.path, need_val)
        labels = {s: findex.labels(s) for s in findex.files}
        class_names = findex.class_names
        summary["split_folders"] = dict(findex.split_dirs)  # split <- the folder taken for it
    multilabel = _is_multilabel(labels)
    class_names, lookup = _class_order(class_names, cfg, str(source.path), multilabel)
    check_task(class_names, cfg.task, str(source.path), multilabel)
    if multilabel:
        summary["task"] = MULTILABEL
    if cfg.task == ORDINAL:
        summary["grades"] = grade_order(class_names)
        if leading_integers(class_names) is None:  # names such as mild/moderate sort by name, not by grade
            warnings.warn(f"data.task: ordinal reads the grades of {source.path} in class index order "
                          f"({grade_order(class_names)}); if that is not the scale, name the classes so that they "
                          "sort in grade order (0_none, 1_mild, ...)", stacklevel=2)
    if lookup is not None:
        labels = {s: lookup[v] for s, v in labels.items()}
    num_classes = len(class_names)
    plan = plan_indices(labels, cfg, num_classes, groups)
    summary.update(
        class_names=list(class_names),
        num_classes=num_classes,
        image_size=cfg.image_size,
        val_from="train" if cfg.val_fraction is not None else "val",
        totals={s: int(len(v)) for s, v in labels.items()},
        counts={s: _class_counts(v, class_names) for s, v in labels.items()},
        planned={s: _class_counts(labels[src][idx], class_names) | {"total": int(len(idx))}
                 for s, (src, idx) in plan.items()},
    )
    return summary


def _is_multilabel(labels: dict[str, np.ndarray]) -> bool:
    """Whether the labels are (N, L) 0/1 findings (every source reads them so, or as (N,) classes)."""
    return any(np.ndim(v) == 2 for v in labels.values())


def _class_order(class_names: tuple[str, ...], cfg: DataConfig, where: str,
                 multilabel: bool) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The classes with the positive one last (``classes.py``); multi-label findings keep their order,
    since each is a positive class of its own (``data.positive_class`` is refused there)."""
    if not multilabel:
        return order_with_positive_last(class_names, cfg.positive_class, where)
    if cfg.positive_class is not None:
        raise DataSettingError("positive_class", f"{where}: data.positive_class applies to two-class tasks; in this "
                               f"multi-label data every finding ({', '.join(class_names)}) is scored as positive "
                               "against its absence")
    return class_names, None


def _class_counts(labels: np.ndarray, class_names: tuple[str, ...]) -> dict[str, int]:
    """Images per class; for multi-label findings, the images that show each finding."""
    if np.ndim(labels) == 2:
        return {name: int(n) for name, n in zip(class_names, np.asarray(labels).sum(axis=0))}
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    return {name: int(n) for name, n in zip(class_names, counts)}


def _identity(source: _Source, cfg: DataConfig) -> tuple[str, Any, Any]:
    """(label, identity, index): what the cache key hashes, plus the cheap index for decoding."""
    need_val = cfg.val_fraction is None
    if source.kind == "npz":
        st = source.path.stat()
        return source.path.stem, [str(source.path), st.st_size, st.st_mtime_ns], None
    if source.kind == "manifest":
        manifest = index_manifest(source.path, cfg, need_val)
        label = f"{source.path.parent.name}-{source.path.stem}"  # labels.csv is a common name
        return label, [str(source.path), manifest.folder.identity], manifest
    index = index_folder(source.path, need_val)  # layout errors surface before any decoding
    return source.path.name, [str(source.path), index.identity], index


@dataclass(frozen=True)
class _Planned:
    """A source decoded (or read from the cache) and its train/val/test planned: what trials get."""

    decoded: Decoded
    class_names: tuple[str, ...]
    labels: dict[str, np.ndarray]
    groups: dict[str, np.ndarray] | None
    plan: dict[str, tuple[str, np.ndarray]]
    dropped: dict[str, int]


def load_splits(cfg: DataConfig) -> DatasetSplits:
    """Train/val/test arrays for `cfg`, decoding the source at most once per node and image size."""
    planned = _planned(cfg)
    decoded, class_names, labels, groups = planned.decoded, planned.class_names, planned.labels, planned.groups
    parts: dict[str, SplitArrays] = {
        name: take(decoded.splits[src][0], labels[src], idx, None if groups is None else groups[src])
        for name, (src, idx) in planned.plan.items()
    }
    return DatasetSplits(**parts, class_names=class_names, fingerprint=_fingerprint(decoded, cfg, class_names),
                         colour_images=decoded.colour_images)


def check_leakage(cfg: DataConfig) -> LeakReport:
    """The leakage and shortcut checks (``leakage.py``) on the splits trials of ``cfg`` get, from the
    node's decode cache (decoding first if it is cold). ``on_leak: drop`` shows in ``dropped``."""
    with warnings.catch_warnings():  # unreadable or tiny images: load_splits has warned about them
        warnings.simplefilter("ignore")
        planned = _planned(cfg)
    images = {split: arrays[0] for split, arrays in planned.decoded.splits.items()}
    labels, class_names = planned.labels, planned.class_names
    if _is_multilabel(labels):  # the checks compare one class per image: each row's stratum (splits.py)
        labels = {s: stratum_key(v, len(class_names))[0] for s, v in labels.items()}
        class_names = (*class_names, "no finding")
    views = planned_views(planned.plan, labels, planned.decoded.evidence, planned.groups, images)
    return run_checks(views, class_names, dropped=planned.dropped)


def _planned(cfg: DataConfig) -> _Planned:
    source = _resolve(cfg)
    label, identity, index = _identity(source, cfg)

    def decode() -> Decoded:
        if source.kind == "npz":
            return decode_npz(source.path, cfg.image_size)
        return decode_folder(index.folder if source.kind == "manifest" else index, cfg.image_size)

    cache_dir = resolve_cache_dir(cfg.cache_dir)
    decoded, hit = load_or_decode(cache_dir, cache_key(label, identity, cfg.image_size), decode)
    log.debug("load_splits(%s, %d px): %s", source.path, cfg.image_size, hit)
    _check_bad(source.path, decoded, cfg.max_bad_fraction)
    _warn_tiny(source.path, decoded)

    if cfg.val_fraction is None and "val" not in decoded.splits:
        raise DataError(f"{source.path}: has no val split; set DataConfig.val_fraction to carve one out of train")
    multilabel = _is_multilabel({s: lab for s, (_, lab) in decoded.splits.items()})
    class_names, lookup = _class_order(decoded.class_names, cfg, str(source.path), multilabel)
    check_task(class_names, cfg.task, str(source.path), multilabel)
    labels = {s: lab if lookup is None else lookup[lab] for s, (_, lab) in decoded.splits.items()}
    for split in ("train", "test") + (("val",) if cfg.val_fraction is None else ()):
        if len(labels[split]) == 0:
            after = " after skipping unreadable images" if decoded.bad_files else ""
            raise DataError(f"{source.path}: split {split!r} is empty{after}; expected at least one image")
    groups = decoded_groups(index, decoded.bad_files) if source.kind == "manifest" else None
    plan = plan_indices(labels, cfg, len(class_names), groups)
    dropped: dict[str, int] = {}
    if cfg.on_leak == "drop":  # val/test images that are exact copies of an earlier split's
        keep = drop_copies(planned_views(plan, labels, decoded.evidence, groups))  # hashes only: no images
        dropped = {name: len(idx) - len(keep[name]) for name, (_, idx) in plan.items() if len(idx) > len(keep[name])}
        plan = {name: (src, idx[keep[name]]) for name, (src, idx) in plan.items()}
    return _Planned(decoded, class_names, labels, groups, plan, dropped)


def mode_summary(splits: DatasetSplits) -> dict[str, Any]:
    """The data's mode for ``medtune validate``'s summary: colour or grey, and how many images are
    colour (a colour source with few of them is a grey source with a few colour files: read it grey
    with ``channels: 1``)."""
    summary: dict[str, Any] = {"mode": "colour" if splits.colour else "grey", "channels": splits.channels}
    if splits.colour_images is not None:
        summary["colour_images"] = splits.colour_images
    return summary


def _check_bad(root: Path, decoded: Decoded, max_bad_fraction: float) -> None:
    """Too many unreadable files is an error; a few are skipped with one warning per load.

    Checked on cache hits too: the threshold is the caller's, not the decoder's.
    """
    if not decoded.bad_files:
        return
    text = describe_bad(root, list(decoded.bad_files), decoded.total_files)
    if len(decoded.bad_files) > max_bad_fraction * decoded.total_files:
        raise TooManyBadImages(f"{text}; that is more than max_bad_fraction={max_bad_fraction:g}. "
                               "Fix or remove them, or raise max_bad_fraction")
    warnings.warn(f"{text}; skipped them", stacklevel=3)


def _warn_tiny(root: Path, decoded: Decoded) -> None:
    """Images a few pixels wide (a broken export, a thumbnail) are kept, with one warning naming how many."""
    from .folder import MAX_NAMED, TINY_SIDE

    if not decoded.tiny_files:
        return
    named = ", ".join(str(root / f) for f in decoded.tiny_files[:MAX_NAMED])
    more = f" and {len(decoded.tiny_files) - MAX_NAMED} more" if len(decoded.tiny_files) > MAX_NAMED else ""
    warnings.warn(f"{len(decoded.tiny_files)} of {decoded.total_files} images under {root} are smaller than "
                  f"{TINY_SIDE} px on a side: {named}{more}; upsampled they carry almost nothing. Check the export",
                  stacklevel=3)


def _fingerprint(decoded: Decoded, cfg: DataConfig, class_names: tuple[str, ...]) -> str:
    """12 hex chars: decoded content + size + split options; equal across machines and paths."""
    options: dict[str, Any] = {"val_fraction": cfg.val_fraction, "train_subset": cfg.train_subset,
                               "val_subset": cfg.val_subset}
    if any(v is not None for v in options.values()):
        options["split_seed"] = cfg.split_seed  # the seed only matters when something is sampled
    if class_names != decoded.class_names:  # the positive class moved: the labels the model sees differ
        options["class_order"] = list(class_names)
    if cfg.group_column is not None:  # grouped carving and folds differ from ungrouped ones
        options["group_column"] = cfg.group_column
    if cfg.on_leak == "drop":  # val/test without the copies of earlier splits' images
        options["on_leak"] = "drop"
    blob = json.dumps({"content": decoded.content_hash, "image_size": cfg.image_size, **options}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


__all__ = ["check_leakage", "inspect_source", "load_splits", "mode_summary"]
