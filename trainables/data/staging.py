"""Data sources on S3: staged into the node's cache once, then read like local files.

A sweep on a cluster names its data as ``s3://bucket/prefix/`` (a Kermany-layout folder) or
``s3://bucket/key.npz``. Every node copies it into ``<cache dir>/s3/<bucket>/<prefix>`` before
its first trial decodes it:

- parallel downloads (a thread pool; boto3 clients are thread-safe);
- objects whose size and ETag match what the last staging recorded in the manifest are skipped,
  so a restarted trial or a second sweep costs one listing;
- a file lock per staged source, so two trials starting together on one node download once; the
  second waits, then finds everything current.

Credentials come from the environment or the AWS config chain (boto3's own), and
``AWS_ENDPOINT_URL_S3`` points boto3 at an S3-compatible store. Nothing here logs credentials.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from medtune.trainables.progress import progress

from .errors import DataError

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
MANIFEST = ".medtune-staged.json"
LOCK_TIMEOUT_S = 3600
DOWNLOAD_THREADS = 16

_stats = {"downloaded": 0, "skipped": 0, "bytes": 0}
_stats_lock = threading.Lock()


def is_s3_uri(source: str) -> bool:
    return source.strip().lower().startswith(S3_SCHEME)


def staging_stats() -> dict[str, int]:
    """Objects downloaded and skipped by this process (what tests and benchmarks look at)."""
    with _stats_lock:
        return dict(_stats)


@dataclass(frozen=True)
class _Location:
    bucket: str
    key: str  # a prefix ending in "/" for folders, else an object key

    @classmethod
    def parse(cls, uri: str) -> "_Location":
        rest = uri.strip()[len(S3_SCHEME):]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise DataError(f"{uri}: expected s3://bucket/prefix/ or s3://bucket/key.npz")
        return cls(bucket, key)


def _client() -> Any:
    import boto3

    return boto3.client("s3")


def _list(client: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object under ``prefix``."""
    out: dict[str, tuple[int, str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                out[obj["Key"]] = (int(obj["Size"]), str(obj["ETag"]))
    return out


def stage_s3(uri: str, cache_dir: Path) -> Path:
    """Make ``uri`` available on this node; returns the local folder (or ``.npz`` file)."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = _Location.parse(uri)
    root = Path(cache_dir) / "s3" / loc.bucket
    client = _client()
    try:
        objects = _list(client, loc.bucket, loc.key)
    except (BotoCoreError, ClientError) as exc:
        raise DataError(f"{uri}: cannot list the data source on S3 ({_reason(exc)}); check the bucket, the "
                        "credentials (environment or AWS config) and AWS_ENDPOINT_URL_S3 "
                        "for S3-compatible stores") from None
    if loc.key and not loc.key.endswith("/") and loc.key in objects:  # one object, e.g. a MedMNIST .npz
        objects = {loc.key: objects[loc.key]}
        target = _inside(root, loc.key, uri)
        base = loc.key.rpartition("/")[0] + "/" if "/" in loc.key else ""
    else:
        prefix = loc.key if not loc.key or loc.key.endswith("/") else loc.key + "/"
        objects = {k: v for k, v in objects.items() if k.startswith(prefix)}
        target = root / prefix if prefix else root
        base = prefix
    if not objects:
        raise DataError(f"{uri}: no objects there; expected a Kermany-layout folder (train/, val/, test/) "
                        "or an .npz object")

    folder = _inside(Path(cache_dir) / "s3", f"{loc.bucket}/{base}", uri)
    for key in objects:  # every object's place, checked before anything is written
        _inside(folder, key[len(base):], f"{uri}: object {key!r}")
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".medtune-staging.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            _sync(client, loc.bucket, base, objects, folder, uri)
    except Timeout:
        raise DataError(f"{uri}: timed out after {LOCK_TIMEOUT_S}s waiting for another process staging it "
                        f"({folder}); is one stuck?") from None
    return target


def _sync(client: Any, bucket: str, base: str, objects: dict[str, tuple[int, str]], folder: Path, uri: str) -> None:
    """Under the lock: download what is new or changed since the manifest, then record it."""
    from botocore.exceptions import BotoCoreError, ClientError

    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}

    def current(key: str) -> bool:
        local = _inside(folder, key[len(base):], key)
        return manifest.get(key) == list(objects[key]) and local.is_file() and local.stat().st_size == objects[key][0]

    todo = [k for k in objects if not current(k)]
    skipped = len(objects) - len(todo)

    def fetch(key: str) -> int:
        local = _inside(folder, key[len(base):], key)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.part-{os.getpid()}")
        client.download_file(bucket, key, str(tmp))
        tmp.replace(local)
        return objects[key][0]

    try:
        with ThreadPoolExecutor(max_workers=min(DOWNLOAD_THREADS, max(1, len(todo)))) as pool, \
                progress(total=sum(objects[k][0] for k in todo), desc=f"staging {uri}", unit="B",
                         unit_scale=True, unit_divisor=1024) as bar:
            sizes = []
            for size in pool.map(fetch, todo):
                sizes.append(size)
                bar.update(size)
    except (BotoCoreError, ClientError) as exc:
        raise DataError(f"{uri}: download failed ({_reason(exc)})") from None
    manifest.update({k: list(objects[k]) for k in objects})
    tmp_manifest = manifest_path.with_name(MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(manifest))
    tmp_manifest.replace(manifest_path)
    with _stats_lock:
        _stats["downloaded"] += len(todo)
        _stats["skipped"] += skipped
        _stats["bytes"] += sum(sizes)
    if todo:
        log.info("Staged %s: %d objects downloaded (%.1f MB), %d already current", uri, len(todo),
                 sum(sizes) / 1e6, skipped)


def _inside(folder: Path, relative: str | Path, what: str) -> Path:
    """``folder / relative``, refused when it resolves outside ``folder``.

    Object keys are the bucket owner's strings: ``data/../../../x`` or ``/etc/x`` must not make a
    node write outside its cache.
    """
    base = Path(folder).resolve()
    target = (base / relative).resolve()
    if str(relative).startswith(("/", "\\")) or not target.is_relative_to(base):
        raise DataError(f"{what}: resolves outside the staging cache ({base}); refusing to stage it "
                        "(keys must not contain '..' segments or start with '/')")
    return Path(folder) / relative


def _reason(exc: Exception) -> str:
    """The error's code and message, without request details that could carry signed URLs."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    if error:
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return type(exc).__name__
