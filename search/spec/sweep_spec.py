"""The validated sweep specification: the one object every later step reads.

A space file is read once (``medtune.search.spec.loader``), checked here completely, and turned into a frozen
``SweepSpec``. Checking collects every problem before failing, and each problem names the file,
the key path (``space.lr.loguniform``) and what was expected, so a user fixes a file in one pass
and no cluster time is spent on a typo.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medtune.search.credentials import uri_credentials_problem, with_credentials_from_environment
from medtune.search.run.study import storage_setting_problem
from medtune.search.spec.space import Distribution, architectures_of, parse_distribution
from medtune.trainables.budget import BUDGET_UNITS
from medtune.trainables.config import REPORTED_METRICS, TrialConfig, check_value, config_keys

SAMPLERS = ("tpe", "random", "grid")
SCHEDULERS = ("asha", "fifo")
#: Trial-config keys filled from the ``data`` section, not from ``space``/``fixed``.
DATA_KEYS = {
    "source": "data_source",
    "val_fraction": "data_val_fraction",
    "split_seed": "data_split_seed",
    "train_subset": "data_train_subset",
    "val_subset": "data_val_subset",
    "max_bad_fraction": "data_max_bad_fraction",
    "positive_class": "data_positive_class",
    "image_size": "image_size",
}
#: Trial-config keys the sweep driver owns (from the environment or other sections).
#: ``image_size`` is the exception: the data section sets the default and the space may search it.
DRIVER_KEYS = {"epochs", "budget_unit", "budget", "cv_folds", "data_dir", "cache_dir", "weights_dir",
               *DATA_KEYS.values()} - {"image_size"}
#: ``search.cv: auto`` cross-validates when the val split has fewer images than this in some class:
#: there, choosing among many configurations by val alone rewards noise (README: small data sets).
CV_AUTO_MIN_VAL_PER_CLASS = 100
CV_AUTO_FOLDS = 5


class SpecError(ValueError):
    """A space file does not validate; ``problems`` lists (key path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:"]
        lines += [f"  - {path}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class DataSpec:
    source: str
    image_size: int = 28
    val_fraction: float | None = None
    split_seed: int = 0
    train_subset: int | None = None
    val_subset: int | None = None
    max_bad_fraction: float = 0.01
    positive_class: str | int | None = None  # two-class tasks: a class name or index (trainables/data/classes.py)


@dataclass(frozen=True)
class MetricSpec:
    name: str = "val_auc"   # docs/objective.md: it ranked runs better than val_loss here
    mode: str = "max"


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
    # k-fold cross-validated trials over train + val: an int k >= 2, "auto" (k = 5 when val has
    # fewer than CV_AUTO_MIN_VAL_PER_CLASS images in some class), or None (select on val).
    cv: int | str | None = None


@dataclass(frozen=True)
class ResourcesSpec:
    cpu: float = 1
    gpu: float = 0


@dataclass(frozen=True)
class MlflowSpec:
    tracking_uri: str = "sqlite:///mlruns.db"
    artifact_location: str | None = "./mlartifacts"
    experiment: str | None = None  # default: the sweep name
    enabled: bool = True
    registered_model_name: str | None = None  # register the sweep's best model under this name


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
        base = {config_key: getattr(self.data, yaml_key) for yaml_key, config_key in DATA_KEYS.items()}
        base.update(budget_fields(self.search.scheduler))
        if isinstance(self.search.cv, int):
            base["cv_folds"] = self.search.cv
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


def resolve_cv(spec: SweepSpec, val_counts: dict[str, int]) -> SweepSpec:
    """``search.cv: auto`` made concrete from the val split's class counts (k folds, or off)."""
    if spec.search.cv != "auto":
        return spec
    small = bool(val_counts) and min(val_counts.values()) < CV_AUTO_MIN_VAL_PER_CLASS
    return dataclasses.replace(spec, search=dataclasses.replace(spec.search, cv=CV_AUTO_FOLDS if small else None))


# --------------------------------------------------------------------------------------------
# Validation


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, path: str, message: str) -> None:
        self.items.append((path, message))


_Reader = Callable[[Any], Any]


def _section(value: Any, key: str, allowed: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    """Read the mapping at path ``key``, reporting unknown keys and wrong types; returns checked values.

    ``allowed`` maps each key to (type or tuple of types, default, extra check or None).
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems(key, f"expected a mapping, got {type(value).__name__} {value!r}")
        return {k: spec[1] for k, spec in allowed.items()}
    out: dict[str, Any] = {}
    for unknown in sorted(set(value) - set(allowed)):
        problems(f"{key}.{unknown}", f"unknown key; expected one of: {', '.join(allowed)}")
    for name, (types, default, check) in allowed.items():
        v = value.get(name, default)
        path = f"{key}.{name}"
        if v is None and default is None:
            out[name] = None
            continue
        if not _isinstance(v, types):
            problems(path, f"expected {_type_names(types)}, got {type(v).__name__} {v!r}")
            out[name] = default
            continue
        if check and (msg := check(v)):
            problems(path, msg)
        out[name] = v
    return out


def _isinstance(v: Any, types: Any) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(v, bool):
        return bool in types
    if int in types and isinstance(v, int):
        return True
    if float in types and isinstance(v, (int, float)):
        return True
    return any(isinstance(v, t) for t in types if t not in (int, float, bool))


def _type_names(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping", list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _at_least(low: float, inclusive: bool = True) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = v >= low if inclusive else v > low
        return None if ok else f"must be {'>=' if inclusive else '>'} {low}, got {v}"

    return check


def _in_range(low: float, high: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if low <= v <= high else f"must be in [{low}, {high}], got {v}"

    return check


def _one_of(options: tuple) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {list(options)}, got {v!r}"

    return check


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a folder under the results storage, or None: a sweep's name, run
    name and experiment become folder names, and ``../x`` would write outside ``storage``."""
    if any(c in name for c in "/\\:") or name.strip(".") == "" or name.startswith("."):
        return f"must not contain '/', '\\' or ':' nor be or start with '.' (it names a folder), got {name!r}"
    return None


def _cv_setting(v: Any) -> str | None:
    if isinstance(v, str):
        return None if v == "auto" else f"expected an integer number of folds >= 2, 'auto' or null, got {v!r}"
    return None if v >= 2 else f"expected at least 2 folds, got {v}"


TOP_LEVEL = ("name", "data", "metric", "search", "resources", "space", "fixed", "mlflow", "storage", "provenance")


def validate_spec(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Check a parsed space file completely; raise ``SpecError`` listing every problem."""
    problems = _Problems()
    if not isinstance(raw, dict):
        raise SpecError(source, [("<top>", f"expected a mapping of sections, got {type(raw).__name__}")])
    for unknown in sorted(set(raw) - set(TOP_LEVEL)):
        problems(unknown, f"unknown section; expected one of: {', '.join(TOP_LEVEL)}")

    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems("name", f"expected a non-empty string (the MLflow experiment and Ray run name), got {name!r}")
        name = "medtune"
    elif msg := folder_name_problem(name):
        problems("name", msg)

    data = _section(raw.get("data", {}), "data", {
        "source": (str, None, uri_credentials_problem),
        "image_size": (int, 28, _at_least(8)),
        "val_fraction": (float, None, _in_range(0.01, 0.9)),
        "split_seed": (int, 0, None),
        "train_subset": (int, None, _at_least(2)),
        "val_subset": (int, None, _at_least(2)),
        "max_bad_fraction": (float, 0.01, _in_range(0, 1)),
        "positive_class": ((str, int), None, None),
    }, problems)
    if isinstance(data.get("positive_class"), int) and not isinstance(data["positive_class"], bool):
        data["positive_class"] = str(data["positive_class"])  # an index; names and indices travel as text
    if not data.get("source"):
        problems("data.source", "required: a MedMNIST name (pneumoniamnist), an .npz file or a chest X-ray folder")
        data["source"] = ""

    metric = _section(raw.get("metric", {}), "metric", {"name": (str, "val_auc", None), "mode": (str, None, _one_of(("min", "max")))}, problems)
    direction = REPORTED_METRICS.get(metric["name"])
    if direction is None:
        problems("metric.name", f"{metric['name']!r} is not reported by the trainable; reported: {', '.join(REPORTED_METRICS)}")
    elif metric["mode"] is None:
        metric["mode"] = direction
    elif metric["mode"] != direction:
        problems("metric.mode", f"{metric['name']} is better when {'lower' if direction == 'min' else 'higher'}: "
                                f"mode must be {direction!r}, got {metric['mode']!r}")
    metric["mode"] = metric["mode"] or "min"

    search_raw = raw.get("search", {}) or {}
    nested = search_raw if isinstance(search_raw, dict) else {}
    search = _section({k: v for k, v in nested.items() if k not in ("sampler", "scheduler")}
                      if isinstance(search_raw, dict) else search_raw, "search", {
        "num_samples": (int, 12, _at_least(1)),
        "max_concurrent": (int, 2, _at_least(1)),
        "max_failures": (int, 0, _at_least(0)),
        "checkpoints_to_keep": (int, 2, _at_least(1)),
        "time_budget_s": (float, None, _at_least(0, inclusive=False)),
        "cv": ((int, str), None, _cv_setting),
    }, problems)
    sampler = _section(nested.get("sampler", {}), "search.sampler", {
        "name": (str, "tpe", _one_of(SAMPLERS)),
        "seed": (int, 0, None),
        "n_startup_trials": (int, None, _at_least(0)),
        "storage": (str, None, storage_setting_problem),
    }, problems)
    scheduler = _section(nested.get("scheduler", {}), "search.scheduler", {
        "name": (str, "asha", _one_of(SCHEDULERS)),
        "max_t": (int, 6, _at_least(1)),
        "grace_period": (int, 1, _at_least(1)),
        "reduction_factor": (float, 3, _at_least(1, inclusive=False)),
        "unit": (str, "epochs", _one_of(BUDGET_UNITS)),
    }, problems)
    if isinstance(scheduler["max_t"], int) and isinstance(scheduler["grace_period"], int) \
            and scheduler["grace_period"] > scheduler["max_t"]:
        problems("search.scheduler.grace_period", f"must be <= max_t ({scheduler['max_t']}), got {scheduler['grace_period']}")

    resources = _section(raw.get("resources", {}), "resources", {"cpu": (float, 1, _at_least(0)), "gpu": (float, 0, _at_least(0))}, problems)
    if isinstance(resources["gpu"], (int, float)) and resources["gpu"] > 1 and resources["gpu"] != int(resources["gpu"]):
        problems("resources.gpu", f"a fraction must be <= 1 (several trials share a GPU); whole GPUs above 1, got {resources['gpu']}")

    # MLflow's own variables come after the space file and --set, before medtune's defaults.
    mlflow = _section(raw.get("mlflow", {}), "mlflow", {
        "tracking_uri": (str, os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlruns.db", None),
        "artifact_location": (str, "./mlartifacts", None),
        "experiment": (str, os.environ.get("MLFLOW_EXPERIMENT_NAME") or None, folder_name_problem),
        "enabled": (bool, True, None),
        "registered_model_name": (str, None, None),
    }, problems)

    if isinstance(mlflow["tracking_uri"], str):  # a written (redacted) URI: its password from the environment
        mlflow["tracking_uri"] = with_credentials_from_environment(mlflow["tracking_uri"])

    storage = raw.get("storage", "./ray_results")
    if not isinstance(storage, str) or not storage:
        problems("storage", f"expected a path or URI for Ray results, got {storage!r}")
        storage = "./ray_results"
    elif msg := uri_credentials_problem(storage):
        problems("storage", msg)

    provenance = raw.get("provenance", {}) or {}
    if not isinstance(provenance, dict):
        problems("provenance", "expected a mapping")
        provenance = {}

    space, fixed = _validate_space_and_fixed(raw, problems)
    _validate_trial_combinations(space, fixed, data, problems)
    if sampler["name"] == "grid":
        _validate_grid(space, search["num_samples"], problems)

    if problems.items:
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


def _validate_space_and_fixed(raw: dict[str, Any], problems: _Problems) -> tuple[dict[str, Distribution], dict[str, Any]]:
    space: dict[str, Distribution] = {}
    fixed: dict[str, Any] = {}
    settable = sorted(set(config_keys()) - DRIVER_KEYS)
    for section in ("fixed", "space"):
        values = raw.get(section, {}) or {}
        if not isinstance(values, dict):
            problems(section, f"expected a mapping of trial keys, got {type(values).__name__}")
            continue
        for key, value in values.items():
            path = f"{section}.{key}"
            if key not in config_keys() or key in DRIVER_KEYS:
                hint = ""
                if key == "epochs":
                    hint = " (the epoch budget is search.scheduler.max_t)"
                elif key in DRIVER_KEYS:
                    hint = " (set it in the data section)"
                problems(path, f"unknown trial key{hint}; expected one of: {', '.join(settable)}")
                continue
            if key in fixed or key in space:
                problems(path, "given in both 'space' and 'fixed'")
                continue
            dist = parse_distribution(value, path, problems) if section == "space" else None
            if section == "space" and isinstance(value, dict):
                if dist is None:
                    continue
                for candidate in dist.candidate_values():
                    if msg := check_value(key, candidate):
                        problems(f"{path}.{dist.kind}", f"{candidate!r}: {msg}")
                space[key] = dist
            else:
                if msg := check_value(key, value):
                    problems(path, msg)
                    continue
                fixed[key] = value
    return space, fixed


def _validate_trial_combinations(space: dict[str, Distribution], fixed: dict[str, Any],
                                 data: dict[str, Any], problems: _Problems) -> None:
    """Checks that need several keys: frozen depth per architecture, pretrained weights."""
    if ("frozen_depth" in space or "frozen_depth" in fixed) and ("frozen_fraction" in space or "frozen_fraction" in fixed):
        problems("space.frozen_depth", "give either frozen_depth (stages) or frozen_fraction (share of stages), not both")
    architectures = architectures_of(space, fixed, TrialConfig().architecture)
    try:
        from medtune.trainables.models import get_architecture
        infos = {a: get_architecture(a) for a in architectures}
    except Exception:  # unknown names were reported by the per-key checks already
        return
    if "frozen_depth" in space and space["frozen_depth"].kind == "int":
        low = int(space["frozen_depth"].low)
        for arch, info in infos.items():
            if low > info.num_stages:
                problems("space.frozen_depth.int", f"low {low} exceeds the {info.num_stages} stages of {arch}")
    elif "frozen_depth" in space:
        problems("space.frozen_depth", "expected an int range {int: [low, high]} (or use frozen_fraction for a share)")
    if isinstance(fixed.get("frozen_depth"), int):
        for arch, info in infos.items():
            if fixed["frozen_depth"] > info.num_stages:
                problems("fixed.frozen_depth", f"{fixed['frozen_depth']} exceeds the {info.num_stages} stages of {arch}")
    pretrained = fixed.get("pretrained", "none")
    if "pretrained" not in space and pretrained not in ("none", "imagenet") and not Path(str(pretrained)).expanduser().exists():
        problems("fixed.pretrained", f"weights file not found: {pretrained}")


def _validate_grid(space: dict[str, Distribution], num_samples: int, problems: _Problems) -> None:
    """A grid runs every combination once: only choices, and num_samples equal to the grid's size."""
    size = 1
    for key, dist in space.items():
        if dist.kind != "choice":
            problems(f"space.{key}", f"the grid sampler needs {{choice: [...]}} for every key, got {dist.kind}")
            return
        size *= len(dist.values)
    if num_samples != size:
        problems("search.num_samples", f"the grid has {size} points: set num_samples to {size}, got {num_samples}")


def trial_stage_counts(spec: SweepSpec) -> dict[str, int]:
    from medtune.trainables.models import get_architecture

    return {arch: get_architecture(arch).num_stages for arch in spec.architectures}
