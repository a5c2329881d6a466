"""The validated sweep specification: the one object every later step reads.

A space file is read once (``medtune.search.spec.loader``), checked here completely, and turned into a
frozen ``SweepSpec``. Checking collects every problem before failing, and each problem names the
file, the key path (``space.lr.loguniform``) and what was expected, so a user fixes a file in one
pass and no cluster time is spent on a typo. ``validate_spec`` runs the section readers in file
order (``section_checks`` for the sections, ``trial_keys`` for ``space`` and ``fixed``); the
sections' dataclasses are in ``sections``. Everything is importable from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from medtune.search.spec.section_checks import (
    TOP_LEVEL,
    check_metric_task,
    folder_name_problem,
    read_data,
    read_metric,
    read_mlflow,
    read_name,
    read_provenance,
    read_resources,
    read_search,
    read_storage,
    unknown_sections,
)
from medtune.search.spec.sections import (
    BEST_CONFIG_FILE,
    CV_AUTO_FOLDS,
    CV_AUTO_MIN_VAL_PER_CLASS,
    DEFAULT_TRACKING_URI,
    SAMPLERS,
    SCHEDULERS,
    DataSpec,
    MetricSpec,
    MlflowSpec,
    ResourcesSpec,
    SamplerSpec,
    SchedulerSpec,
    SearchSpec,
)
from medtune.search.spec.space import Distribution, architectures_of
from medtune.search.spec.trial_keys import DRIVER_KEYS, check_combinations, check_grid, read_space_and_fixed
from medtune.trainables.checks import Problems
from medtune.trainables.config import TrialConfig
from medtune.trainables.objective import race_metric

__all__ = [
    "BEST_CONFIG_FILE", "CV_AUTO_FOLDS", "DEFAULT_TRACKING_URI", "CV_AUTO_MIN_VAL_PER_CLASS", "DRIVER_KEYS", "SAMPLERS",
    "SCHEDULERS", "TOP_LEVEL",
    "DataSpec", "MetricSpec", "MlflowSpec", "ResourcesSpec", "SamplerSpec", "SchedulerSpec", "SearchSpec",
    "SpecError", "SweepSpec", "asha_milestones", "budget_fields", "epoch_plan", "folder_name_problem", "race_until",
    "resolve_cv", "scheduler_metric", "trial_stage_counts",
    "validate_spec",
]


class SpecError(ValueError):
    """A space file does not validate; ``problems`` lists (key path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:"]
        lines += [f"  - {path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class SweepSpec:
    name: str
    data: DataSpec
    metric: MetricSpec
    search: SearchSpec
    resources: ResourcesSpec
    space: dict[str, Distribution]
    fixed: dict[str, Any]
    mlflow: MlflowSpec
    storage: str
    source: str = "<spec>"
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.name

    @property
    def architectures(self) -> list[str]:
        return architectures_of(self.space, self.fixed, TrialConfig().architecture)

    def trial_base(self) -> dict[str, Any]:
        """The trial-config values every trial shares: data, epoch budget, fixed keys.

        Keys that the space samples are left out, so a sampled value is never overwritten.
        """
        base = self.data.trial_values()
        base.update(budget_fields(self.search.scheduler))
        if isinstance(self.search.cv, int):
            base["cv_folds"] = self.search.cv
            until = race_until(self.search)
            if until is not None:
                base["cv_race_until"] = until
        base.update(self.fixed)
        return {k: v for k, v in base.items() if k not in self.space}

    def content_hash(self) -> str:
        """Hash of the effective (overridden) spec, for MLflow tags and provenance."""
        blob = json.dumps(self.raw, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def budget_fields(scheduler: SchedulerSpec) -> dict[str, Any]:
    """The trial-config keys that carry the budget ``max_t`` in the scheduler's unit."""
    if scheduler.unit == "epochs":
        return {"epochs": scheduler.max_t}
    return {"budget_unit": scheduler.unit, "budget": scheduler.max_t}


def asha_milestones(scheduler: SchedulerSpec) -> list[int]:
    """The budget counters at which ASHA compares trials, lowest first, as Ray's ``ASHAScheduler``
    places its rungs (``grace_period * reduction_factor ** k``); none below ``max_t`` under FIFO."""
    if scheduler.name != "asha":
        return []
    rungs = int(math.log(scheduler.max_t / scheduler.grace_period) / math.log(scheduler.reduction_factor) + 1)
    return [int(math.ceil(scheduler.grace_period * scheduler.reduction_factor ** k)) for k in range(rungs)
            if scheduler.grace_period * scheduler.reduction_factor ** k < scheduler.max_t]


def race_until(search: SearchSpec) -> int | None:
    """Where a cross-validated trial stops racing on one fold: ASHA's last rung below ``max_t``
    (None without racing: no folds, ``cv_racing: false``, or a scheduler with no rungs)."""
    if not isinstance(search.cv, int) or not search.cv_racing:
        return None
    milestones = asha_milestones(search.scheduler)
    return milestones[-1] if milestones else None


def scheduler_metric(spec: SweepSpec) -> str:
    """What ASHA compares at its rungs (and the learning curves draw): the objective, or for trials
    that race over folds its estimate over the folds trained so far, ``<objective>_race`` (the
    objective itself is NaN until every fold trains)."""
    return race_metric(spec.metric.name) if race_until(spec.search) is not None else spec.metric.name


def epoch_plan(spec: SweepSpec) -> int | None:
    """Every trial's epoch count when the budget is in epochs; with steps or images each trial has its own."""
    scheduler = spec.search.scheduler
    return scheduler.max_t if scheduler.unit == "epochs" else None


def resolve_cv(spec: SweepSpec, val_counts: dict[str, int]) -> SweepSpec:
    """``search.cv: auto`` made concrete from the val split's class counts (k folds, or off)."""
    if spec.search.cv != "auto":
        return spec
    small = bool(val_counts) and min(val_counts.values()) < CV_AUTO_MIN_VAL_PER_CLASS
    return dataclasses.replace(spec, search=dataclasses.replace(spec.search, cv=CV_AUTO_FOLDS if small else None))


def trial_stage_counts(spec: SweepSpec) -> dict[str, int]:
    from medtune.trainables.models import get_architecture

    return {arch: get_architecture(arch).num_stages for arch in spec.architectures}


def validate_spec(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Check a parsed space file completely; raise ``SpecError`` listing every problem."""
    if not isinstance(raw, dict):
        raise SpecError(source, [("<top>", f"expected a mapping of sections, got {type(raw).__name__}")])
    problems = Problems()
    unknown_sections(raw, problems)
    name = read_name(raw, problems)
    data = read_data(raw, problems)
    metric = read_metric(raw, problems)
    check_metric_task(data, metric, problems)
    search, sampler, scheduler = read_search(raw, problems)
    resources = read_resources(raw, problems)
    mlflow = read_mlflow(raw, problems)
    storage = read_storage(raw, problems)
    provenance = read_provenance(raw, problems)
    space, fixed = read_space_and_fixed(raw, problems)
    check_combinations(space, fixed, problems)
    if sampler["name"] == "grid":
        check_grid(space, search["num_samples"], problems)
    if problems:
        raise SpecError(source, problems.items)
    return SweepSpec(
        name=name,
        data=DataSpec(**data),
        metric=MetricSpec(**metric),
        search=SearchSpec(sampler=SamplerSpec(**sampler), scheduler=SchedulerSpec(**scheduler), **search),
        resources=ResourcesSpec(**resources),
        space=space,
        fixed=fixed,
        mlflow=MlflowSpec(**mlflow),
        storage=storage,
        source=source,
        raw=raw,
        provenance=provenance,
    )
