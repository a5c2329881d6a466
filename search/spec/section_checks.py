"""Reading each section of a parsed space file into checked values, one function per section.

Every reader takes the raw value and a ``Problems`` collector and returns plain values (a section's
default where a value was unusable), so ``validate_spec`` can report every problem of a file at
once. Each problem is ``(key path, message)``: ``data.val_fraction: must be in [0.01, 0.9], got
0.95``. The generic pieces (types, ranges, the mapping reader) are the validation kit in
``medtune.trainables.checks``; the ``data:`` keys are ``DATA_SETTINGS``, the table the trainable
checks its own config against. ``space:`` and ``fixed:`` are ``trial_keys``'s.
"""

from __future__ import annotations

import os
from typing import Any

from medtune.search.credentials import uri_credentials_problem, with_credentials_from_environment
from medtune.search.spec.sections import (
    DEFAULT_STORAGE,
    SAMPLERS,
    SCHEDULERS,
    MetricSpec,
    MlflowSpec,
    ResourcesSpec,
    SamplerSpec,
    SchedulerSpec,
    SearchSpec,
    default_of,
    storage_setting_problem,
)
from medtune.trainables.budget import BUDGET_UNITS
from medtune.trainables.checks import Check, Field, Problems, at_least, is_blank, one_of, read_section
from medtune.trainables.data.config import DATA_SETTING, DATA_SETTINGS
from medtune.trainables.objective import REPORTED_METRICS, Objective, objective_task_problem

TOP_LEVEL = ("name", "data", "metric", "search", "resources", "space", "fixed", "mlflow", "storage", "provenance")
#: What a space file checks on top of a data setting's own rule: a URI written there holds no password.
DATA_FILE_CHECKS: dict[str, Check] = {"source": uri_credentials_problem}


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a folder under the results storage, or None: a sweep's name, run
    name and experiment become folder names, and ``../x`` would write outside ``storage``."""
    if any(c in name for c in "/\\:") or name.strip(".") == "" or name.startswith("."):
        return f"must not contain '/', '\\' or ':' nor be or start with '.' (it names a folder), got {name!r}"
    return None


def unknown_sections(raw: dict[str, Any], problems: Problems) -> None:
    for unknown in sorted(set(raw) - set(TOP_LEVEL)):
        problems(unknown, f"unknown section; expected one of: {', '.join(TOP_LEVEL)}")


def read_name(raw: dict[str, Any], problems: Problems) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems("name", f"expected a non-empty string (the MLflow experiment and Ray run name), got {name!r}")
        return "medtune"
    if msg := folder_name_problem(name):
        problems("name", msg)
    return name


def read_data(raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The ``data:`` section, held to ``DATA_SETTINGS``; a class index becomes text, as names travel."""
    fields = {s.name: Field(s.accepted, s.default, DATA_FILE_CHECKS.get(s.name, s.check)) for s in DATA_SETTINGS}
    data = read_section(raw.get("data", {}), "data", fields, problems)
    if isinstance(data.get("positive_class"), int) and not isinstance(data["positive_class"], bool):
        data["positive_class"] = str(data["positive_class"])
    if is_blank(data.get("source")):
        problems("data.source", f"required: {DATA_SETTING['source'].doc}")
        data["source"] = ""
    return data


def read_metric(raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The ``metric:`` section: a reported metric, with the direction the trainable's table gives it."""
    metric = read_section(raw.get("metric", {}), "metric", {
        "name": Field(str, default_of(MetricSpec, "name")),
        "mode": Field(str, None, one_of(("min", "max"))),
    }, problems)
    name, mode = metric["name"], metric["mode"]
    direction = REPORTED_METRICS.get(name)
    if direction is None:
        problems("metric.name", f"{name!r} is not reported by the trainable; reported: {', '.join(REPORTED_METRICS)}")
    elif mode is None:
        metric["mode"] = direction
    elif mode != direction:
        better = "lower" if Objective(name, direction).order_ascending else "higher"
        problems("metric.mode", f"{name} is better when {better}: mode must be {direction!r}, got {mode!r}")
    metric["mode"] = metric["mode"] or "min"
    return metric


def check_metric_task(data: dict[str, Any], metric: dict[str, Any], problems: Problems) -> None:
    """An objective only some tasks report (``val_qwk``: ordinal tasks) on a task whose trials never
    report it would leave every trial without a value: refused before any trial."""
    if isinstance(metric.get("name"), str) and (problem := objective_task_problem(metric["name"], data.get("task"))):
        problems("metric.name", problem)


def _cv_setting(v: Any) -> str | None:
    if isinstance(v, str):
        return None if v == "auto" else f"expected an integer number of folds >= 2, 'auto' or null, got {v!r}"
    return None if v >= 2 else f"expected at least 2 folds, got {v}"


def read_search(raw: dict[str, Any], problems: Problems) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ``search:`` section: (its own keys, ``search.sampler``, ``search.scheduler``)."""
    search_raw = raw.get("search", {}) or {}
    nested = search_raw if isinstance(search_raw, dict) else {}
    own = ({k: v for k, v in nested.items() if k not in ("sampler", "scheduler")}
           if isinstance(search_raw, dict) else search_raw)
    search = read_section(own, "search", {
        "num_samples": Field(int, default_of(SearchSpec, "num_samples"), at_least(1)),
        "max_concurrent": Field(int, default_of(SearchSpec, "max_concurrent"), at_least(1)),
        "max_failures": Field(int, default_of(SearchSpec, "max_failures"), at_least(0)),
        "checkpoints_to_keep": Field(int, default_of(SearchSpec, "checkpoints_to_keep"), at_least(1)),
        "time_budget_s": Field(float, default_of(SearchSpec, "time_budget_s"), at_least(0, inclusive=False)),
        "cv": Field((int, str), default_of(SearchSpec, "cv"), _cv_setting),
        "cv_racing": Field(bool, default_of(SearchSpec, "cv_racing")),
    }, problems)
    sampler = read_section(nested.get("sampler", {}), "search.sampler", {
        "name": Field(str, default_of(SamplerSpec, "name"), one_of(SAMPLERS)),
        "seed": Field(int, default_of(SamplerSpec, "seed")),
        "n_startup_trials": Field(int, default_of(SamplerSpec, "n_startup_trials"), at_least(0)),
        "storage": Field(str, default_of(SamplerSpec, "storage"), storage_setting_problem),
    }, problems)
    scheduler = read_section(nested.get("scheduler", {}), "search.scheduler", {
        "name": Field(str, default_of(SchedulerSpec, "name"), one_of(SCHEDULERS)),
        "max_t": Field(int, default_of(SchedulerSpec, "max_t"), at_least(1)),
        "grace_period": Field(int, default_of(SchedulerSpec, "grace_period"), at_least(1)),
        "reduction_factor": Field(float, default_of(SchedulerSpec, "reduction_factor"), at_least(1, inclusive=False)),
        "unit": Field(str, default_of(SchedulerSpec, "unit"), one_of(BUDGET_UNITS)),
    }, problems)
    if isinstance(scheduler["max_t"], int) and isinstance(scheduler["grace_period"], int) \
            and scheduler["grace_period"] > scheduler["max_t"]:
        problems("search.scheduler.grace_period",
                 f"must be <= max_t ({scheduler['max_t']}), got {scheduler['grace_period']}")
    return search, sampler, scheduler


def read_resources(raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    resources = read_section(raw.get("resources", {}), "resources", {
        "cpu": Field(float, default_of(ResourcesSpec, "cpu"), at_least(0)),
        "gpu": Field(float, default_of(ResourcesSpec, "gpu"), at_least(0)),
    }, problems)
    gpu = resources["gpu"]
    if isinstance(gpu, (int, float)) and gpu > 1 and gpu != int(gpu):
        problems("resources.gpu",
                 f"a fraction must be <= 1 (several trials share a GPU); whole GPUs above 1, got {gpu}")
    return resources


def read_mlflow(raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The ``mlflow:`` section. MLflow's own variables come after the space file and ``--set``,
    before medtune's defaults; a written (redacted) URI gets its password from the environment."""
    mlflow = read_section(raw.get("mlflow", {}), "mlflow", {
        "tracking_uri": Field(str, os.environ.get("MLFLOW_TRACKING_URI") or default_of(MlflowSpec, "tracking_uri")),
        "artifact_location": Field(str, default_of(MlflowSpec, "artifact_location")),
        "experiment": Field(str, os.environ.get("MLFLOW_EXPERIMENT_NAME") or default_of(MlflowSpec, "experiment"),
                            folder_name_problem),
        "enabled": Field(bool, default_of(MlflowSpec, "enabled")),
        "registered_model_name": Field(str, default_of(MlflowSpec, "registered_model_name")),
    }, problems)
    if isinstance(mlflow["tracking_uri"], str):
        mlflow["tracking_uri"] = with_credentials_from_environment(mlflow["tracking_uri"])
    return mlflow


def read_storage(raw: dict[str, Any], problems: Problems) -> str:
    storage = raw.get("storage", DEFAULT_STORAGE)
    if not isinstance(storage, str) or not storage:
        problems("storage", f"expected a path or URI for Ray results, got {storage!r}")
        return "./ray_results"
    if msg := uri_credentials_problem(storage):
        problems("storage", msg)
    return storage


def read_provenance(raw: dict[str, Any], problems: Problems) -> dict[str, Any]:
    provenance = raw.get("provenance", {}) or {}
    if not isinstance(provenance, dict):
        problems("provenance", "expected a mapping")
        return {}
    return provenance
