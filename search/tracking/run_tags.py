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

# medtune's own tags that are written in one module and read back in another (``medtune best``,
# the notes, the UI links): their names live here, once.
KIND_TAG = "medtune.kind"  # sweep | trial | final
RUN_NAME_TAG = "medtune.run_name"  # a sweep's Ray run name
TRIAL_ID_TAG = "medtune.trial_id"
LAST_EPOCH_TAG = "medtune.last_epoch"
BEST_EPOCH_TAG = "medtune.best_epoch"


def best_value_tag(metric: str) -> str:
    """The tag a closed trial run carries its best value of ``metric`` under (``medtune.best_val_auc``)."""
    return f"medtune.best_{metric}"


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
