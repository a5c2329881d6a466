"""Decode-once cache: decoded, resized arrays as plain .npy files, shared by every trial on a node.

Layout: <cache_dir>/<key>/{split}_{images,labels}.npy + {split}_evidence_{column}.npy (per image:
its pixel and perceptual hashes and file properties, for the leakage checks; ``image_facts.py``;
memory-mapped, so a trial that never reads them pays nothing) + meta.json, where the key hashes the
source's identity (path, sizes, mtimes), the image size and CACHE_FORMAT. Entries are
written under a file lock (concurrent trials decode once), into a temp dir renamed into
place (readers never see half an entry), and read back with mmap (trials share the page
cache instead of holding one copy each). An in-process memo on top lets a reused Ray
actor skip even opening the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from filelock import FileLock, Timeout

from .errors import DataError
from .image_facts import with_image_hashes

log = logging.getLogger(__name__)

# Bump when decoding changes (resampling, cropping, layout): old entries then miss.
# 2: each split's evidence (hashes, file properties) stored beside its arrays.
# 3: colour sources keep three channels, and an entry records its mode (``colour.py``).
CACHE_FORMAT = 3
LOCK_TIMEOUT_S = 3600
_STALE_TMP_S = 3600

Hit = Literal["memo", "disk", "decoded"]


@dataclass(frozen=True)
class Decoded:
    """One source fully decoded at one size: split name -> (images (N,S,S,C) uint8, labels (N,) int64).

    ``channels`` is the source's mode (``colour.py``): 1 when every image is grey, 3 when any is
    colour (then every image has three channels); ``colour_images`` counts the colour ones."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    class_names: tuple[str, ...]
    bad_files: tuple[str, ...] = ()
    total_files: int = 0
    #: Files smaller than ``TINY_SIDE`` px on a side (a broken thumbnail, a 1x1 export): kept, but warned about.
    tiny_files: tuple[str, ...] = ()
    content_hash: str = ""
    channels: int = 1
    colour_images: int = 0
    #: split -> column -> one value per image (``image_facts.py``): what the leakage checks read.
    evidence: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


_memo: dict[tuple[str, str], Decoded] = {}
_memo_lock = threading.Lock()
_stats = {"decodes": 0, "disk_hits": 0, "memo_hits": 0}


def cache_stats() -> dict[str, int]:
    """Counts of decodes / disk hits / memo hits in this process (how tests see that caching worked)."""
    return dict(_stats)


def reset_cache_stats() -> None:
    """Zero the counters (tests measure one scenario at a time)."""
    for name in _stats:
        _stats[name] = 0


def clear_memo() -> None:
    """Forget in-process entries, so the next load reads the disk cache again."""
    with _memo_lock:
        _memo.clear()


def cache_key(label: str, identity: Any, image_size: int) -> str:
    """Readable prefix + hash of everything that decides the decoded arrays."""
    blob = json.dumps({"format": CACHE_FORMAT, "identity": identity, "size": image_size},
                      sort_keys=True, default=str).encode()
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40]
    return f"{safe}-{image_size}px-{hashlib.sha256(blob).hexdigest()[:20]}"


def content_hash(splits: dict[str, tuple[np.ndarray, np.ndarray]], class_names: tuple[str, ...]) -> str:
    """Hash of the decoded pixels and labels: same data -> same hash on any machine or path."""
    h = hashlib.sha256(json.dumps(list(class_names)).encode())
    for name in sorted(splits):
        images, labels = splits[name]
        h.update(f"{name}:{images.shape}:".encode())
        h.update(np.ascontiguousarray(images).data)
        if np.ndim(labels) == 2:  # multi-label findings: their shape too (single-label hashes are unchanged)
            h.update(f"labels:{np.shape(labels)}:".encode())
        h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return h.hexdigest()


def load_or_decode(cache_dir: Path, key: str, decode: Callable[[], Decoded]) -> tuple[Decoded, Hit]:
    """Return the entry for `key`, decoding (once per node) only when neither memo nor disk has it."""
    memo_key = (str(cache_dir.resolve()), key)
    with _memo_lock:  # also serialises threads of one process around the same decode
        if memo_key in _memo:
            _stats["memo_hits"] += 1
            return _memo[memo_key], "memo"
        decoded, hit = _load_or_decode_disk(cache_dir, key, decode)
        _memo[memo_key] = decoded
        return decoded, hit


def _load_or_decode_disk(cache_dir: Path, key: str, decode: Callable[[], Decoded]) -> tuple[Decoded, Hit]:
    entry = cache_dir / key
    found = _read_entry(entry)  # lock-free fast path: complete entries are immutable
    if found is not None:
        _stats["disk_hits"] += 1
        return found, "disk"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("Decode cache %s is not writable (%s); decoding in memory only", cache_dir, exc)
        return _decode(decode), "decoded"
    lock_path = cache_dir / f"{key}.lock"
    try:
        with FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
            found = _read_entry(entry)
            if found is not None:  # another process decoded it while we waited
                _stats["disk_hits"] += 1
                return found, "disk"
            decoded = _decode(decode)
            _remove_stale(cache_dir, key, entry)
            _write_entry(cache_dir, key, decoded)
    except Timeout as exc:
        raise DataError(f"timed out after {LOCK_TIMEOUT_S}s waiting for cache lock {lock_path}; "
                        "is another process stuck decoding this source?") from exc
    return _read_entry(entry) or decoded, "decoded"


def _decode(decode: Callable[[], Decoded]) -> Decoded:
    decoded = decode()
    _stats["decodes"] += 1
    splits = {k: (np.ascontiguousarray(v[0], dtype=np.uint8), np.ascontiguousarray(v[1], dtype=np.int64))
              for k, v in decoded.splits.items()}
    return replace(decoded, splits=splits, content_hash=content_hash(splits, decoded.class_names),
                   evidence=with_image_hashes(decoded.evidence, splits))


def _write_entry(cache_dir: Path, key: str, decoded: Decoded) -> None:
    tmp = cache_dir / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for split, (images, labels) in decoded.splits.items():
            np.save(tmp / f"{split}_images.npy", images, allow_pickle=False)
            np.save(tmp / f"{split}_labels.npy", labels, allow_pickle=False)
            for column, values in decoded.evidence.get(split, {}).items():
                np.save(tmp / f"{split}_evidence_{column}.npy", values, allow_pickle=False)
        meta = {
            "format": CACHE_FORMAT,
            "splits": sorted(decoded.splits),
            "class_names": list(decoded.class_names),
            "bad_files": list(decoded.bad_files),
            "total_files": decoded.total_files,
            "tiny_files": list(decoded.tiny_files),
            "content_hash": decoded.content_hash,
            "evidence": {split: sorted(columns) for split, columns in decoded.evidence.items()},
            "channels": decoded.channels,
            "colour_images": decoded.colour_images,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks the entry complete
        os.rename(tmp, cache_dir / key)
    except OSError as exc:
        log.warning("Could not write decode cache entry %s (%s); continuing without it", cache_dir / key, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_entry(entry: Path) -> Decoded | None:
    """The cached arrays (memory-mapped, read-only), or None if absent, incomplete or from another format."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != CACHE_FORMAT:
            return None
        splits = {  # images mapped (shared page cache), labels tiny so plainly loaded
            s: (np.load(entry / f"{s}_images.npy", mmap_mode="r", allow_pickle=False),
                np.load(entry / f"{s}_labels.npy", allow_pickle=False))
            for s in meta["splits"]
        }
        evidence = {s: {c: np.load(entry / f"{s}_evidence_{c}.npy", mmap_mode="r", allow_pickle=False)
                        for c in columns} for s, columns in meta["evidence"].items()}
    except (OSError, ValueError, KeyError):
        return None
    return Decoded(splits=splits, class_names=tuple(meta["class_names"]), bad_files=tuple(meta["bad_files"]),
                   total_files=int(meta["total_files"]), content_hash=meta["content_hash"],
                   tiny_files=tuple(meta.get("tiny_files", ())), evidence=evidence,
                   channels=int(meta.get("channels", 1)), colour_images=int(meta.get("colour_images", 0)))


def _remove_stale(cache_dir: Path, key: str, entry: Path) -> None:
    """Under the lock: drop a broken entry and temp dirs left by crashed writers of this key."""
    if entry.exists():
        shutil.rmtree(entry, ignore_errors=True)
    now = time.time()
    for tmp in cache_dir.glob(f".tmp-{key}-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass
