"""Where a sweep's files live: a local folder or a URI (``s3://bucket/prefix``), through pyarrow.

Ray Tune reads and writes its results through ``pyarrow.fs``; medtune's own files in the run
folder (``medtune_sweep.json``, ``best_config.yaml``, ``asha_rungs.json``) go the same way, so a
run folder on S3 behaves like a local one. ``check_storage`` proves the storage writable before
any trial trains, with credentials from the environment or the AWS config chain and
``AWS_ENDPOINT_URL_S3`` for S3-compatible stores, as Ray's own storage finds them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow.fs

from medtune.search.locations import is_remote
from medtune.search.spec.sweep_spec import SpecError, SweepSpec


def storage_path(spec: SweepSpec) -> str:
    """The results storage as Ray wants it: an absolute local path, or the URI as given."""
    return spec.storage if is_remote(spec.storage) else str(Path(spec.storage).expanduser().resolve())


def run_path_of(spec: SweepSpec, run_name: str) -> str:
    """The run folder of sweep ``run_name``: ``<storage>/<run name>``, where Tune keeps its state."""
    return f"{storage_path(spec).rstrip('/')}/{run_name}"


def _filesystem(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    uri = location if is_remote(location) else Path(location).expanduser().resolve().as_uri()
    return pyarrow.fs.FileSystem.from_uri(uri)


def write_file(folder: str, name: str, data: bytes) -> None:
    """``data`` as ``<folder>/<name>``, creating the folder first."""
    fs, path = _filesystem(folder)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{name}") as f:
        f.write(data)


def read_file(folder: str, name: str) -> bytes:
    """The bytes of ``<folder>/<name>``; ``FileNotFoundError`` or ``OSError`` when it cannot be read."""
    fs, path = _filesystem(folder)
    with fs.open_input_stream(f"{path}/{name}") as f:
        return f.read()


def upload(local: Path, folder_uri: str, name: str) -> None:
    """Copy a local file to ``<folder_uri>/<name>`` (a run folder that is a URI; the folder exists)."""
    fs, path = pyarrow.fs.FileSystem.from_uri(f"{folder_uri}/{name}")
    with fs.open_output_stream(path) as f:
        f.write(local.read_bytes())


def check_storage(spec: SweepSpec) -> None:
    """The results storage must be writable before any trial trains: write and delete a probe.

    A local folder is only checked to be creatable (nothing is made now); a URI gets a probe file.
    """
    if not is_remote(spec.storage):
        folder = Path(spec.storage).expanduser().resolve()
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise SpecError(spec.source, [("storage", f"cannot create results under {spec.storage!r}: "
                                                      f"{existing} is not a writable folder")])
        return
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(spec.storage)
        fs.create_dir(path, recursive=True)
        probe = f"{path.rstrip('/')}/.medtune-probe-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as f:
            f.write(b"medtune storage probe")
        fs.delete_file(probe)
    except (OSError, ValueError) as exc:
        hint = ("check the bucket name, the credentials (environment or AWS config) and, for an "
                "S3-compatible store, AWS_ENDPOINT_URL_S3" if spec.storage.startswith("s3://") else
                "check that it exists and can be written")
        raise SpecError(spec.source, [("storage", f"cannot write to {spec.storage!r}: {exc}; {hint}")]) from None
