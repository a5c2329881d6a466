"""What each section of a valid space file holds: one frozen dataclass per section, with its defaults.

``sweep_spec.SweepSpec`` is made of these; ``section_checks`` reads a parsed file into them. The
``data:`` section is the data layer's own ``DataConfig`` (its keys, defaults and ranges live in
``medtune.trainables.data.config``), and ``metric:`` is an ``Objective``, so a sweep compares
values of its objective the way every other part of medtune does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from medtune.search.credentials import uri_credentials_problem
from medtune.search.locations import is_remote
from medtune.trainables.data.config import DataConfig
from medtune.trainables.objective import Objective

SAMPLERS = ("tpe", "random", "grid")
SCHEDULERS = ("asha", "fifo")
#: ``search.cv: auto`` cross-validates when the val split has fewer images than this in some class:
#: there, choosing among many configurations by val alone rewards noise (README: small data sets).
CV_AUTO_MIN_VAL_PER_CLASS = 100
#: Three folds: every image of train + val is held out once, as with five, and with racing over folds
#: (``cv_racing``) a trial that passes ASHA's last rung pays for three models instead of five
#: (benchmarks/small_data.py measures the configurations per CPU-hour and the selected test AUC).
CV_AUTO_FOLDS = 3

#: The ``data:`` section: which data every trial sees (no locations: those are the machine's).
DataSpec = DataConfig


def default_of(section: type, key: str) -> Any:
    """A section's default for ``key``: its dataclass's, the one place defaults are written."""
    field_ = next(f for f in dataclasses.fields(section) if f.name == key)
    return field_.default_factory() if field_.default_factory is not dataclasses.MISSING else field_.default


#: Where Ray's results go when a space file names no ``storage``.
DEFAULT_STORAGE = "./ray_results"
#: The MLflow store when neither the space file nor ``MLFLOW_TRACKING_URI`` names one.
DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
#: The best configuration a sweep writes: a space file with every chosen value under ``fixed``.
BEST_CONFIG_FILE = "best_config.yaml"


@dataclass(frozen=True)
class MetricSpec(Objective):
    """The ``metric:`` section: the objective. ``val_auc`` by default: docs/objective.md shows it
    ranks configurations better than ``val_loss`` on these data sets."""


@dataclass(frozen=True)
class SamplerSpec:
    name: str = "tpe"
    seed: int | None = 0
    n_startup_trials: int | None = None  # None: Optuna's default, capped for small sweeps
    # The Optuna study's storage (search/run/study.py): None is a journal file in the run folder.
    storage: str | None = None


@dataclass(frozen=True)
class SchedulerSpec:
    name: str = "asha"
    max_t: int = 6
    grace_period: int = 1
    reduction_factor: float = 3
    # What max_t and grace_period count: epochs, optimizer steps or images seen (medtune.trainables.budget).
    unit: str = "epochs"


@dataclass(frozen=True)
class SearchSpec:
    num_samples: int = 12
    max_concurrent: int = 2
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    max_failures: int = 0
    checkpoints_to_keep: int = 2
    # Wall-clock budget of Tuner.fit in seconds (None: until num_samples trials finish). When it
    # runs out Tune stops the running trials at their last reported epoch; the sweep still ranks,
    # logs and writes best_config.yaml from what finished ("a 30-minute search").
    time_budget_s: float | None = None
    # k-fold cross-validated trials over train + val: an int k >= 2, "auto" (k = 3 when val has
    # fewer than CV_AUTO_MIN_VAL_PER_CLASS images in some class), or None (select on val).
    cv: int | str | None = None
    # Cross-validated trials under ASHA race over folds: one fold model until ASHA's last rung,
    # then every fold (``medtune.trainables.train.folds_in_epoch``). False: every fold from the start.
    cv_racing: bool = True


@dataclass(frozen=True)
class ResourcesSpec:
    cpu: float = 1
    gpu: float = 0


@dataclass(frozen=True)
class MlflowSpec:
    tracking_uri: str = DEFAULT_TRACKING_URI
    artifact_location: str | None = "./mlartifacts"
    experiment: str | None = None  # default: the sweep name
    enabled: bool = True
    registered_model_name: str | None = None  # register the sweep's best model under this name


#: URL schemes Optuna's RDBStorage (SQLAlchemy) is given; anything else is a journal file path.
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
#: ``search.sampler.storage: memory`` keeps the study in the driver's memory only.
IN_MEMORY = "memory"


def storage_setting_problem(value: str) -> str | None:
    """Why a ``search.sampler.storage`` value is refused (it is checked before anything starts)."""
    if value == IN_MEMORY:
        return None
    if is_remote(value):
        scheme = value.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in RDB_SCHEMES:
            return (f"expected an RDB URL ({', '.join(s + '://' for s in RDB_SCHEMES)}), a journal file path "
                    f"or {IN_MEMORY!r}, got a {scheme}:// URL")
        return uri_credentials_problem(value)
    return None
