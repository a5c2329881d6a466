"""Leakage and shortcut checks over the splits trials will see, read from the decode cache.

A score is only as honest as its test split. These checks look for what inflates it, on the
planned train/val/test (after ``val_fraction`` carving and subsets, so an image copied inside the
source's train split counts once carving puts the copies on both sides):

- **exact duplicates**: a val or test image whose decoded pixels (at the cached ``image_size``)
  equal an earlier split's image. Equal decoded arrays are the same input to the model, however
  the files were encoded (a PNG copy of a JPEG counts; byte-identical files always do).
- **near duplicates**: a val or test image, not an exact copy, that an earlier split has in a
  nearly equal version (re-saved at another JPEG quality, brightened, re-scaled): one of its
  ``NEAR_CANDIDATES`` nearest images by the 64-bit difference hash (``image_facts``), within
  ``NEAR_BITS`` bits, whose cached pixels correlate with its own at ``NEAR_CORRELATION`` or more.
- **groups across splits**: a patient or study (``data.group_column``) with images in two splits.
- **shortcuts**: a file property (storage mode, bit depth, format, extension, pixel dimensions,
  file size in power-of-two bins, DICOM Manufacturer and Modality) whose one value makes up at
  least ``MAJORITY`` of one class and at most ``MINORITY`` of another in train (what the model
  learns from): the model may tell those classes apart by how the files were made.

"Earlier" follows what each split is used for: val is checked against train, test against train
and val (``medtune final`` trains on both). Everything here reads the decode cache (hashes,
properties, and a few cached images per near-copy candidate); no image file is opened.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .image_facts import hamming

#: Near duplicates, in two steps. The hash finds candidates: the ``NEAR_CANDIDATES`` images of the
#: earlier splits nearest by dHash, within ``NEAR_BITS`` of 64 bits. The cached pixels decide: a
#: candidate is a near copy when the two images' Pearson correlation is >= ``NEAR_CORRELATION``
#: (insensitive to brightness and contrast). The hash alone cannot decide: measured on
#: brain_tumor_mri (64 px, docs/data.md), 846 of its 1,095 non-identical test images are within 6
#: bits of a train image and 208 within 0, one of them of another class, while the pixels show a
#: clear group of 266 near copies at r >= 0.99 (248 of them >= 0.999) above a continuum that thins
#: out below 0.98. Every one of those 266 was within 2 bits; 4 leaves room for stronger re-encoding.
NEAR_BITS = 4
NEAR_CANDIDATES = 8
NEAR_CORRELATION = 0.99
#: The shortcut rule: a property value that is >= MAJORITY of one class and <= MINORITY of another.
MAJORITY = 0.9
MINORITY = 0.1
#: Classes with fewer images than this are not compared: a share of 2 images says nothing.
MIN_CLASS_IMAGES = 20
#: Examples named per finding.
EXAMPLES = 5
#: Split order: a split is checked against the splits before it.
ORDER = ("train", "val", "test")
#: The file properties checked for shortcuts, and how each is named in a finding.
PROPERTIES = {"mode": "storage mode", "bits": "bit depth", "format": "format", "extension": "file extension",
              "dims": "pixel dimensions", "size_bin": "file size", "manufacturer": "DICOM Manufacturer",
              "modality": "DICOM Modality"}


@dataclass(frozen=True)
class SplitView:
    """One planned split as the checks see it: labels, groups, the cached evidence of its rows, and
    the cached images (``images[rows[i]]`` is row i: nothing is copied until a check reads it)."""

    name: str
    labels: np.ndarray
    evidence: dict[str, np.ndarray]
    groups: np.ndarray | None = None
    images: np.ndarray | None = None
    rows: np.ndarray | None = None

    def names(self, rows: np.ndarray | list[int] | range) -> list[str]:
        """How a finding names images: their paths, or ``split[i]`` for array sources."""
        paths = self.evidence.get("path")
        return [str(paths[i]) if paths is not None else f"{self.name}[{i}]" for i in rows]

    def pixels(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), pixels) float32, each image centred and scaled to unit norm (for correlations)."""
        assert self.images is not None and self.rows is not None
        flat = np.asarray(self.images[np.asarray(self.rows)[rows]], dtype=np.float32).reshape(len(rows), -1)
        flat -= flat.mean(axis=1, keepdims=True)
        return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)


@dataclass(frozen=True)
class Finding:
    """One problem: which check, how many images (or groups), one line saying it, some examples."""

    check: str
    count: int
    message: str
    examples: tuple[str, ...] = ()
    #: split -> the rows (of the planned split, in load order) the finding is about, where it is
    #: about images: e.g. the test rows that are copies, to score a run's test_predictions.csv without them.
    rows: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


@dataclass(frozen=True)
class LeakReport:
    """What the checks found, what ``on_leak: drop`` removed, and what was checked."""

    findings: tuple[Finding, ...]
    checked: dict[str, int]
    dropped: dict[str, int] = field(default_factory=dict)
    within_split_copies: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for ``medtune validate``: what was checked and how much was found."""
        checked = ", ".join(f"{n:,} {split}" for split, n in self.checked.items())
        found = f"{len(self.findings)} finding{'s' if len(self.findings) != 1 else ''}" if self.findings else "clean"
        inside = (f"; repeated images inside a split (not leakage): "
                  f"{', '.join(f'{n} in {s}' for s, n in self.within_split_copies.items())}"
                  if self.within_split_copies else "")
        return f"{checked} images checked: {found}{inside}"


def planned_views(plan: dict[str, tuple[str, np.ndarray]], labels: dict[str, np.ndarray],
                  evidence: dict[str, dict[str, np.ndarray]], groups: dict[str, np.ndarray] | None,
                  images: dict[str, np.ndarray] | None = None) -> list[SplitView]:
    """The planned splits (``splits.plan_indices``: name -> (source split, rows)) with their rows'
    evidence, and their cached images (split -> array) when given."""
    views = []
    for name, (src, idx) in plan.items():
        columns = {c: np.asarray(values)[idx] for c, values in evidence.get(src, {}).items()}
        views.append(SplitView(name, np.asarray(labels[src])[idx], columns,
                               None if groups is None else np.asarray(groups[src])[idx],
                               None if images is None else images[src], idx))
    return views


def _earlier(views: list[SplitView], view: SplitView) -> list[SplitView]:
    return [v for v in views if ORDER.index(v.name) < ORDER.index(view.name)]


def copies_of_earlier(views: list[SplitView]) -> dict[str, dict[int, tuple[str, int]]]:
    """split -> {row: (earlier split, its row)} for every val/test image whose pixels an earlier split has."""
    seen: dict[int, tuple[str, int]] = {}
    out: dict[str, dict[int, tuple[str, int]]] = {}
    for view in sorted(views, key=lambda v: ORDER.index(v.name)):
        hashes = view.evidence["pixel_hash"]
        out[view.name] = {i: seen[int(h)] for i, h in enumerate(hashes) if int(h) in seen}
        for i, h in enumerate(hashes):
            seen.setdefault(int(h), (view.name, i))
    return out


def _within_copies(view: SplitView) -> int:
    """Images that repeat another image of the same split (not leakage, but worth knowing)."""
    hashes = view.evidence["pixel_hash"]
    return int(len(hashes) - len(np.unique(hashes)))


def _examples(pairs: list[str]) -> str:
    return f" (e.g. {'; '.join(pairs[:EXAMPLES])})" if pairs else ""


def exact_duplicates(views: list[SplitView]) -> Finding | None:
    by_view = {v.name: v for v in views}
    copies = copies_of_earlier(views)
    parts, examples, total, conflicts = [], [], 0, 0
    for view in views:
        found = copies.get(view.name, {})
        if not found:
            continue
        total += len(found)
        pairs = Counter(src for src, _ in found.values())
        sources = (f"{next(iter(pairs))} images" if len(pairs) == 1
                   else " or ".join(f"{src} ({n})" for src, n in pairs.items()) + " images")
        conflicts += sum(by_view[src].labels[src_row] != view.labels[row] for row, (src, src_row) in found.items())
        named = [f"{view.names([row])[0]} = {by_view[src].names([src_row])[0]}"
                 for row, (src, src_row) in list(found.items())[:EXAMPLES]]
        examples += named
        parts.append(f"{len(found)} of {len(view.labels)} {view.name} images are copies of {sources}"
                     + _examples(named))
    if not total:
        return None
    label_note = f"; {conflicts} of them carry another label than their copy" if conflicts else ""
    return Finding("exact duplicates across splits", total,
                   f"{'; '.join(parts)}{label_note}. Equal decoded pixels: the model is tested on images it "
                   "trained on ('data.on_leak: drop' leaves them out of val and test)", tuple(examples),
                   {split: tuple(sorted(found)) for split, found in copies.items() if found})


def _nearest(view: SplitView, earlier: list[SplitView], rows: np.ndarray, bits: int,
             cells: int) -> list[tuple[int, SplitView, int, int, float]]:
    """(row, earlier view, its row, bits, correlation) of each of ``rows`` with a near copy before it."""
    ref_hash = np.concatenate([np.asarray(v.evidence["phash"]) for v in earlier])
    ref_where = [(v, i) for v in earlier for i in range(len(v.labels))]
    k = min(NEAR_CANDIDATES, len(ref_hash))
    phash = np.asarray(view.evidence["phash"])
    found = []
    step = max(1, cells // max(1, len(ref_hash)))
    for start in range(0, len(rows), step):
        block = rows[start:start + step]
        dist = hamming(phash[block, None], ref_hash[None, :])
        close = np.flatnonzero(dist.min(axis=1) <= bits)  # most rows have no candidate: skip the sort
        dist, block = dist[close], block[close]
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        for row, candidates, d in zip(block, nearest, np.take_along_axis(dist, nearest, axis=1)):
            candidates = candidates[d <= bits]
            if not len(candidates):
                continue
            mine = view.pixels(np.array([row]))[0]
            refs = [ref_where[c] for c in candidates]
            corr = np.array([float(v.pixels(np.array([i]))[0] @ mine) for v, i in refs])
            best = int(corr.argmax())
            if corr[best] >= NEAR_CORRELATION:
                other, other_row = refs[best]
                found.append((int(row), other, other_row, int(d[d <= bits][best]), float(corr[best])))
    return found


def near_duplicates(views: list[SplitView], bits: int = NEAR_BITS, cells: int = 1 << 22) -> Finding | None:
    """Val/test images, not exact copies, with a near copy in an earlier split (hash, then pixels).

    The hash step compares every (image, earlier image) pair in blocks of about ``cells`` pairs
    (measured: 0.8 s per 250 million pairs, so about 8 s for 25,000 val + test images against
    100,000 train images); the pixel step reads at most ``NEAR_CANDIDATES`` cached images per image
    with a candidate."""
    exact = copies_of_earlier(views)
    parts, examples, total, near_rows = [], [], 0, {}
    for view in views:
        earlier = [v for v in _earlier(views, view) if len(v.labels)]
        if not earlier or not len(view.labels) or view.images is None:
            continue
        rows = np.array([i for i in range(len(view.labels)) if i not in exact.get(view.name, {})], dtype=np.int64)
        found = _nearest(view, earlier, rows, bits, cells)
        if not found:
            continue
        total += len(found)
        near_rows[view.name] = tuple(row for row, *_ in found)
        named = [f"{view.names([row])[0]} ~ {other.names([other_row])[0]} ({d} bits, r={r:.3f})"
                 for row, other, other_row, d, r in found[:EXAMPLES]]
        examples += named
        parts.append(f"{len(found)} of {len(view.labels)} {view.name} images are near copies of "
                     f"{'/'.join(v.name for v in earlier)} images" + _examples(named))
    if not total:
        return None
    return Finding("near duplicates across splits", total,
                   f"{'; '.join(parts)}. Within {bits} bits by a 64-bit difference hash and pixel correlation "
                   f">= {NEAR_CORRELATION}: re-saved, rescaled or re-exposed versions of one image; look at them",
                   tuple(examples), near_rows)


def groups_across(views: list[SplitView]) -> Finding | None:
    """Groups (patients, studies) with images in more than one split."""
    if any(v.groups is None for v in views):
        return None
    where: dict[str, Counter[str]] = defaultdict(Counter)
    for view in views:
        for group in np.asarray(view.groups):
            where[str(group)][view.name] += 1
    crossing = {g: c for g, c in where.items() if len(c) > 1}
    if not crossing:
        return None
    images = sum(sum(c.values()) for c in crossing.values())
    examples = tuple(f"{g}: " + ", ".join(f"{n} {s}" for s, n in c.items())
                     for g, c in list(crossing.items())[:EXAMPLES])
    pairs = Counter("/".join(sorted(c, key=ORDER.index)) for c in crossing.values())
    return Finding("groups across splits", len(crossing),
                   f"{len(crossing)} of {len(where)} groups ({images} images) are in more than one split "
                   f"({', '.join(f'{p}: {n}' for p, n in pairs.items())}); e.g. {'; '.join(examples)}", examples)


def _size_bin(nbytes: np.ndarray) -> np.ndarray:
    """File sizes as power-of-two ranges (``16-32 KiB``): coarse enough to group files of one kind."""
    def label(n: int) -> str:
        if n <= 0:
            return ""
        low = 1 << (int(n).bit_length() - 1)
        return f"{_human(low)}-{_human(2 * low)}"
    return np.array([label(int(n)) for n in nbytes], dtype=str)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} TiB"


def _property(views: list[SplitView], name: str) -> np.ndarray | None:
    column = "file_bytes" if name == "size_bin" else name
    if any(column not in v.evidence for v in views):
        return None
    values = np.concatenate([np.asarray(v.evidence[column]) for v in views])
    return _size_bin(values) if name == "size_bin" else values.astype(str)


def _shares(values: np.ndarray, labels: np.ndarray, value: str, num_classes: int,
            minimum: int = MIN_CLASS_IMAGES) -> dict[int, tuple[int, int]]:
    """class -> (images with ``value``, images) for classes with at least ``minimum`` images."""
    out = {}
    for c in range(num_classes):
        members = labels == c
        if members.sum() >= max(1, minimum):
            out[c] = (int((values[members] == value).sum()), int(members.sum()))
    return out


def shortcuts(views: list[SplitView], class_names: tuple[str, ...]) -> list[Finding]:
    """One finding per file property whose value follows the class in train (what the model learns
    from), by the ``MAJORITY``/``MINORITY`` rule; the other splits' shares are given beside it."""
    train = next((v for v in views if v.name == "train"), None)
    if train is None:
        return []
    others = [v for v in views if v.name != "train" and len(v.labels)]
    findings = []
    for prop, title in PROPERTIES.items():
        values = _property([train], prop)
        if values is None or len(set(values.tolist()) - {"", "0"}) < 2:
            continue
        hits = []
        for value in sorted(set(values.tolist()) - {"", "0"}):
            share = _shares(values, train.labels, value, len(class_names))
            high = [c for c, (k, n) in share.items() if k / n >= MAJORITY]
            low = [c for c, (k, n) in share.items() if k / n <= MINORITY]
            hits += [(value, a, b, share[a], share[b]) for a in high for b in low]
        if not hits:
            continue
        parts = []
        for value, a, b, (ka, na), (kb, nb) in hits:
            elsewhere = []
            for view in others:
                other = _shares(_property([view], prop), view.labels, value, len(class_names), minimum=1)
                if a in other and b in other:
                    elsewhere.append(f"{view.name} {other[a][0] / other[a][1]:.0%} vs {other[b][0] / other[b][1]:.0%}")
            parts.append(f"{value!r} is {ka / na:.0%} of train's {class_names[a]} ({ka} of {na}) but "
                         f"{kb / nb:.0%} of its {class_names[b]} ({kb} of {nb})"
                         + (f" ({', '.join(elsewhere)})" if elsewhere else ""))
        value, a = hits[0][0], hits[0][1]
        rows = np.flatnonzero((values == value) & (train.labels == a))[:EXAMPLES]
        examples = tuple(f"{name} ({value})" for name in train.names(rows))
        findings.append(Finding(f"shortcut: {title}", int(sum(h[3][0] for h in hits)),
                                f"{'; '.join(parts)}. A model may tell these classes apart by how their files "
                                "were made rather than by what they show", examples))
    return findings


def run_checks(views: list[SplitView], class_names: tuple[str, ...], dropped: dict[str, int] | None = None,
               near_bits: int = NEAR_BITS) -> LeakReport:
    """Every check over the planned splits; findings in a fixed order (exact, near, groups, shortcuts)."""
    found = [exact_duplicates(views), near_duplicates(views, near_bits), groups_across(views)]
    findings = tuple(f for f in found if f is not None) + tuple(shortcuts(views, class_names))
    return LeakReport(findings=findings, checked={v.name: int(len(v.labels)) for v in views},
                      dropped=dict(dropped or {}),
                      within_split_copies={v.name: n for v in views if (n := _within_copies(v))})


def drop_copies(views: list[SplitView]) -> dict[str, np.ndarray]:
    """``on_leak: drop``: split -> the rows to keep, without val/test images that are exact copies of
    an earlier split's (test's of train or val, val's of train). Train keeps everything."""
    copies = copies_of_earlier(views)
    return {v.name: np.array([i for i in range(len(v.labels)) if i not in copies.get(v.name, {})], dtype=np.int64)
            for v in views}
