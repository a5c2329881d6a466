"""Tags every medtune MLflow run carries: MLflow's own context tags and medtune's version.

MLflow's context registry (``mlflow.tracking.context.registry``) is how MLflow itself fills in
``mlflow.user``, ``mlflow.source.name``/``type`` and, when the entry point lies in a git checkout,
``mlflow.source.git.commit``/``repoURL``/``branch``; the UI shows those in its Source column and
run pages. Using the registry rather than a ``git rev-parse`` in the current folder means the tags
describe the program that ran (the job's working copy under ``ray job submit``), and plugins that
register their own context providers (Databricks, a company's provider) work unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

VERSION_TAG = "medtune.version"


@lru_cache(maxsize=1)
def medtune_version() -> str:
    """The installed distribution's version (``pip show medtune``), ``unknown`` from a bare checkout."""
    try:
        return version("medtune")
    except PackageNotFoundError:
        return "unknown"


def run_tags(tags: dict[str, str] | None = None) -> dict[str, str]:
    """``tags`` plus MLflow's context tags and ``medtune.version``; ``tags`` win on a clash, as in
    ``mlflow.start_run``."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags({VERSION_TAG: medtune_version(), **(tags or {})})
