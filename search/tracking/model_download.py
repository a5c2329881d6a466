"""A model named by an MLflow URI, brought to a local folder for ``medtune predict``.

``models:/NAME@champion``, ``models:/NAME/3``, ``models:/m-<id>``, ``runs:/<run>/<path>`` (a logged
model, or a trial run's ``best_checkpoint`` artifact) and artifact URIs are downloaded with
MLflow's own resolver, then the bundle is found in what came down: a medtune MLflow model names it
in its MLmodel file (its ``bundle`` artifact); a trial's ``best_checkpoint/`` is one already. A URI that names
nothing is bad input (``SpecError`` naming ``MODEL``), and no message carries the tracking URI's
credentials.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from medtune.search.credentials import redact_text, redact_uri, tracking_uri_for_mlflow
from medtune.search.spec.sweep_spec import SpecError
from medtune.search.tracking.models import BUNDLE_ARTIFACT

#: ``scheme:/...`` with a scheme of two or more letters (so ``C:/`` stays a path).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:/")
#: The key that names the model in ``medtune predict``'s errors.
MODEL_KEY = "MODEL"


def is_model_uri(text: str) -> bool:
    """``models:/...``, ``runs:/...``, ``s3://...``: a URI, not a local folder."""
    return bool(_URI.match(str(text).strip()))


def download_model(uri: str, tracking_uri: str, dest: str | Path, where: str) -> Path:
    """The folder holding the bundle of the model at ``uri``, downloaded into ``dest``."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from medtune.search.tracking.client import mlflow_client

    mlflow_client(tracking_uri)  # MLflow's environment defaults are set before it is imported
    import mlflow

    try:
        with _store(tracking_uri_for_mlflow(tracking_uri)):  # models:/ URIs resolve in the global registry
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    except Exception as exc:  # MlflowException (no such model, version, alias or run), OSError, ...
        reason = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise SpecError(where, [(MODEL_KEY, f"{redact_uri(uri)}: no model there in the MLflow store at "
                                            f"{redact_uri(tracking_uri)} ({reason}); expected models:/NAME@ALIAS, "
                                            "models:/NAME/VERSION or runs:/RUN_ID/PATH of a medtune model "
                                            "(--tracking-uri names the store)")]) from None
    return bundle_folder(local, uri, where)


@contextmanager
def _store(uri: str) -> Iterator[None]:
    """MLflow's global tracking and registry URIs set to ``uri`` for a while, then put back: MLflow
    resolves ``models:/`` URIs in the global registry, whatever store a call names."""
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)


def bundle_folder(local: Path, uri: str, where: str) -> Path:
    """The bundle inside a downloaded model: the ``bundle`` artifact its MLmodel file names, for a
    medtune MLflow model; else the folder itself (a trial's ``best_checkpoint/``)."""
    if not (local / "MLmodel").is_file():
        return local
    from mlflow.models import Model

    flavor = Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(BUNDLE_ARTIFACT) or {}
    if entry.get("path") and (local / entry["path"]).is_dir():
        return local / entry["path"]
    raise SpecError(where, [(MODEL_KEY, f"{redact_uri(uri)}: an MLflow model without a medtune bundle (no "
                                        f"{BUNDLE_ARTIFACT!r} artifact); models logged by medtune before "
                                        "'medtune predict' existed are pt2 programs that take preprocessed "
                                        "tensors. Run medtune final again to log one that takes images")])
