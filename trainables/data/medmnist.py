"""MedMNIST names: where their .npz lives locally, and fetching it once when missing."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .config import DATA_DIR_ENV
from .errors import DataError
from .medmnist_table import MEDMNIST_TABLE

log = logging.getLogger(__name__)

# Indirection so tests can serve bytes without a network (monkeypatch this name).
_urlopen = urllib.request.urlopen

DOWNLOAD_TIMEOUT_S = 60
LOCK_TIMEOUT_S = 1800
_CHUNK = 1 << 20
@dataclass(frozen=True)
class MedMNISTInfo:
    """One MedMNIST 2D dataset (official MedMNIST v3 files, Zenodo record 10519652), from
    ``medmnist_table``: its task, label names and the (url, md5) of each size's file."""

    name: str
    task: str
    class_names: tuple[str, ...]
    n_channels: int
    files: dict[int, tuple[str, str]]

    @property
    def url(self) -> str:
        return self.files[28][0]

    @property
    def md5(self) -> str:
        return self.files[28][1]


MEDMNIST: dict[str, MedMNISTInfo] = {
    name: MedMNISTInfo(name=name, task=entry["task"],
                       class_names=tuple(entry["labels"][i] for i in sorted(entry["labels"])),
                       n_channels=entry["n_channels"], files=dict(entry["files"]))
    for name, entry in MEDMNIST_TABLE.items()
}

_NAME = re.compile(r"^(?P<name>[a-z]+mnist)(?:_(?P<size>\d+))?$")


def parse_medmnist_name(source: str) -> tuple[MedMNISTInfo, int] | None:
    """(dataset, file size) for ``dermamnist`` (28 px) or ``dermamnist_128`` (a MedMNIST+ file);
    None for anything else."""
    match = _NAME.match(source.strip().lower())
    if not match or match["name"] not in MEDMNIST:
        return None
    info = MEDMNIST[match["name"]]
    size = int(match["size"] or 28)
    return (info, size) if size in info.files else None


def is_medmnist_name(source: str) -> bool:
    return parse_medmnist_name(source) is not None


def class_names_for_file(path: Path) -> tuple[str, ...] | None:
    """Known class names when a file is named like a MedMNIST file (e.g. pneumoniamnist_64.npz)."""
    stem = re.sub(r"_\d+$", "", path.stem.lower())
    info = MEDMNIST.get(stem)
    return info.class_names if info else None


def is_multilabel(info: MedMNISTInfo) -> bool:
    """ChestMNIST gives each image a set of its 14 findings: its labels are (N, 14) 0/1."""
    return info.task.startswith("multi-label")


def resolve_medmnist(name: str, data_dir: Path, image_size: int) -> Path:
    """Path of the .npz for a MedMNIST name, downloading it (md5-checked) if nothing is there.

    ``dermamnist`` is the 28 px file, ``dermamnist_128`` the 128 px MedMNIST+ file. With a bare
    name, a MedMNIST+ file already present at exactly ``image_size`` (e.g. pneumoniamnist_64.npz)
    wins over upsampling the 28 px one, since it holds real detail; it is not downloaded unasked,
    because the larger files run to gigabytes.
    """
    parsed = parse_medmnist_name(name)
    if parsed is None:
        raise DataError(f"{name}: not a MedMNIST 2D name; expected one of {', '.join(MEDMNIST)}, "
                        f"optionally with a MedMNIST+ size (_64, _128, _224)")
    info, size = parsed
    if size == 28 and image_size in info.files and image_size != 28:
        plus = data_dir / f"{info.name}_{image_size}.npz"
        if plus.is_file():
            log.info("Using native %d px MedMNIST+ file %s", image_size, plus)
            return plus
    path = data_dir / (f"{info.name}.npz" if size == 28 else f"{info.name}_{size}.npz")
    if path.is_file():  # checked before locking: the data dir may be read-only
        return path
    return download(info, path, size)


def download(info: MedMNISTInfo, path: Path, size: int = 28) -> Path:
    """Download the ``size`` file of ``info`` to ``path`` once per node: filelock, temp file, md5
    check, atomic rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _missing_error(info, size, path, f"cannot create {path.parent}: {exc}") from exc
    lock_path = path.with_name(path.name + ".lock")
    try:
        with FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
            if path.is_file():  # another process finished the download while we waited
                return path
            _fetch(info, size, path)
    except Timeout as exc:
        raise DataError(f"timed out after {LOCK_TIMEOUT_S}s waiting for lock {lock_path} "
                        f"(another process downloading {info.files[size][0]} to {path}?)") from exc
    return path


def _fetch(info: MedMNISTInfo, size: int, path: Path) -> None:
    url, expected_md5 = info.files[size]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    log.info("Downloading %s to %s", url, path)
    try:
        digest = hashlib.md5()
        try:
            with _urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as exc:  # URLError, HTTPError, timeouts and disk errors are all OSErrors
            raise _missing_error(info, size, path, f"download failed: {exc}") from exc
        if digest.hexdigest() != expected_md5:
            raise DataError(f"download of {url} for {path} is corrupt: md5 {digest.hexdigest()}, "
                            f"expected {expected_md5}. Nothing was written; try again or place the file "
                            f"there yourself.")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _missing_error(info: MedMNISTInfo, size: int, path: Path, why: str) -> DataError:
    url, md5 = info.files[size]
    return DataError(
        f"{info.name}: expected the file at {path}, and it could not be fetched ({why}). "
        f"Download {url} (md5 {md5}) and put it there, or set {DATA_DIR_ENV} "
        f"(or DataConfig.data_dir) to a folder that already holds {path.name}."
    )
