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

log = logging.getLogger(__name__)

# Indirection so tests can serve bytes without a network (monkeypatch this name).
_urlopen = urllib.request.urlopen

DOWNLOAD_TIMEOUT_S = 60
LOCK_TIMEOUT_S = 1800
_CHUNK = 1 << 20
# MedMNIST+ ships larger native sizes as <name>_<size>.npz.
PLUS_SIZES = (64, 128, 224)


@dataclass(frozen=True)
class MedMNISTInfo:
    """One downloadable MedMNIST 2D dataset (official MedMNIST v3 / Zenodo record 10519652)."""

    name: str
    url: str
    md5: str
    class_names: tuple[str, ...]


# Only entries whose checksum we know; an unverified download would defeat the md5 check.
MEDMNIST: dict[str, MedMNISTInfo] = {
    "pneumoniamnist": MedMNISTInfo(
        name="pneumoniamnist",
        url="https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
        md5="19633919eb6007474c347cc93767c15f",
        class_names=("normal", "pneumonia"),
    ),
}


def is_medmnist_name(source: str) -> bool:
    return source.strip().lower() in MEDMNIST


def class_names_for_file(path: Path) -> tuple[str, ...] | None:
    """Known class names when a file is named like a MedMNIST file (e.g. pneumoniamnist_64.npz)."""
    stem = re.sub(r"_\d+$", "", path.stem.lower())
    info = MEDMNIST.get(stem)
    return info.class_names if info else None


def resolve_medmnist(name: str, data_dir: Path, image_size: int) -> Path:
    """Path of the .npz for a MedMNIST name, downloading the 28 px file if nothing is there.

    A local MedMNIST+ file at exactly `image_size` (e.g. pneumoniamnist_64.npz) wins over
    upsampling the 28 px one, since it holds real detail; it is only used when already present.
    """
    info = MEDMNIST[name.strip().lower()]
    if image_size in PLUS_SIZES:
        plus = data_dir / f"{info.name}_{image_size}.npz"
        if plus.is_file():
            log.info("Using native %d px MedMNIST+ file %s", image_size, plus)
            return plus
    path = data_dir / f"{info.name}.npz"
    if path.is_file():  # checked before locking: the data dir may be read-only
        return path
    return download(info, path)


def download(info: MedMNISTInfo, path: Path) -> Path:
    """Download `info.url` to `path` once per node: filelock, temp file, md5 check, atomic rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _missing_error(info, path, f"cannot create {path.parent}: {exc}") from exc
    lock_path = path.with_name(path.name + ".lock")
    try:
        with FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
            if path.is_file():  # another process finished the download while we waited
                return path
            _fetch(info, path)
    except Timeout as exc:
        raise DataError(f"timed out after {LOCK_TIMEOUT_S}s waiting for lock {lock_path} "
                        f"(another process downloading {info.url} to {path}?)") from exc
    return path


def _fetch(info: MedMNISTInfo, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    log.info("Downloading %s to %s", info.url, path)
    try:
        digest = hashlib.md5()
        try:
            with _urlopen(info.url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as exc:  # URLError, HTTPError, timeouts and disk errors are all OSErrors
            raise _missing_error(info, path, f"download failed: {exc}") from exc
        if digest.hexdigest() != info.md5:
            raise DataError(f"download of {info.url} for {path} is corrupt: md5 {digest.hexdigest()}, "
                            f"expected {info.md5}. Nothing was written; try again or place the file "
                            f"there yourself.")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _missing_error(info: MedMNISTInfo, path: Path, why: str) -> DataError:
    return DataError(
        f"{info.name}: expected the file at {path}, and it could not be fetched ({why}). "
        f"Download {info.url} (md5 {info.md5}) and put it there, or set {DATA_DIR_ENV} "
        f"(or DataConfig.data_dir) to a folder that already holds {path.name}."
    )
