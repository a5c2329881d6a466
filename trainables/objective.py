"""What a trial reports, and which way is better: one table, one ``Objective``.

The training function reports the metrics below after every epoch. Every place that needs to know
which of them exist, which are logged to MLflow, which a leaderboard shows, which Tune's console
table prints, or whether a smaller value is better reads this table; every comparison of two
values of the objective goes through ``Objective`` (the direction is normalised once, as Syne
Tune's ``metric_multiplier`` does), so a ``"min"`` objective is never compared the wrong way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, TypeVar

T = TypeVar("T")

#: The key of a trial's epoch counter in every result (Tune's ``training_iteration`` counts
#: reports, which is the same number for medtune's trainable but not what a reader expects).
EPOCH = "epoch"

MODES = ("max", "min")
#: The objective when a space file names none (docs/objective.md: it ranked configurations as the
#: test split did better than val_loss).
DEFAULT_OBJECTIVE = "val_auc"


@dataclass(frozen=True)
class Metric:
    """One reported metric. ``objective``: a sweep may optimise it; ``logged``: an MLflow metric of
    every trial run; ``shown``: a column of the leaderboard; ``progress``: a column of Tune's table;
    ``printed``: a column of the leaderboard ``medtune sweep`` prints; ``task``: the ``data.task``
    whose trials alone report it (None: every task's), so a sweep of another task neither optimises
    it nor shows an empty column of it."""

    name: str
    mode: str
    objective: bool = True
    logged: bool = True
    shown: bool = False
    progress: bool = False
    printed: bool = False
    task: str | None = None


#: The ``data.task`` that reports quadratic-weighted kappa and grade error (``medtune.trainables.ordinal``).
ORDINAL = "ordinal"

_MEASURED: tuple[Metric, ...] = (
    Metric("val_loss", "min", shown=True, progress=True, printed=True),
    Metric("val_auc", "max", shown=True, progress=True, printed=True),
    Metric("val_acc", "max", shown=True, progress=True, printed=True),
    Metric("val_sensitivity", "max", shown=True),
    Metric("val_specificity", "max", shown=True),
    Metric("val_balanced_acc", "max"),
    # graded classes only (data.task: ordinal): agreement and distance of the predicted grade
    Metric("val_qwk", "max", shown=True, printed=True, task=ORDINAL),
    Metric("val_mae", "min", shown=True, task=ORDINAL),
    Metric("train_loss", "min"),
    Metric("images_per_sec", "max"),
    Metric("epoch_seconds", "min", progress=True),
    Metric("data_seconds", "min"),
    # CUDA trials only (trainables/gpu_metrics.py): logged, absent on the CPU, never an objective
    Metric("gpu_util_pct", "max", objective=False),
    Metric("gpu_mem_peak_mib", "min", objective=False),
    # bookkeeping and uncertainty: logged, never an objective
    Metric("lr", "min", objective=False),
    Metric("step", "max", objective=False),
    Metric("images_seen", "max", objective=False),
    Metric("val_loss_sem", "min", objective=False),
    Metric("val_auc_sem", "min", objective=False),
    Metric("val_acc_sem", "min", objective=False),
    Metric("val_balanced_acc_sem", "min", objective=False),
    Metric("val_qwk_sem", "min", objective=False, task=ORDINAL),
    Metric("val_mae_sem", "min", objective=False, task=ORDINAL),
)
#: Suffix of a racing trial's estimate over the folds trained so far (``val_auc_race``): ASHA's
#: rungs compare it, while the objective itself waits for every fold (``race_metric``).
RACE_SUFFIX = "_race"
#: Metrics a cross-validated trial averages over its folds (each also reported as ``<name>_race``
#: when the trial races over folds).
FOLD_MEAN_METRICS: tuple[str, ...] = tuple(m.name for m in _MEASURED if m.name.startswith("val_")
                                           and not m.name.endswith("_sem"))
METRICS: tuple[Metric, ...] = _MEASURED + tuple(
    Metric(f"{m.name}{RACE_SUFFIX}", m.mode, objective=False, task=m.task) for m in _MEASURED
    if m.name in FOLD_MEAN_METRICS)

#: Metrics a sweep may optimise, with the direction that is better.
REPORTED_METRICS: dict[str, str] = {m.name: m.mode for m in METRICS if m.objective}
#: Result keys logged as MLflow metrics of a trial run (everything else in a result is bookkeeping).
LOGGED_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.logged)
#: The metrics a leaderboard shows at each trial's best epoch.
SHOWN_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.shown)
#: The metrics the printed leaderboard shows at each trial's best epoch.
PRINTED_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.printed)
#: Tune's console table: the epoch, then these (the objective is appended where it is not one of them).
PROGRESS_METRICS: tuple[str, ...] = (EPOCH, *(m.name for m in METRICS if m.progress))
#: The objectives only an ordinal task's trials report (``val_qwk``, ``val_mae``).
ORDINAL_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.objective and m.task == ORDINAL)
_TASK_OF: dict[str, str | None] = {m.name: m.task for m in METRICS}
#: Multi-label trials also report each finding's AUC, ``val_auc_<finding>`` (and, cross-validated,
#: its ``_sem``; ``medtune.trainables.multilabel.label_aucs``). Their names depend on the data, so
#: they have no row above: they are logged to MLflow (``is_finding_metric``), never an objective,
#: never a column of a leaderboard or of Tune's table.
FINDING_METRIC_PREFIX = "val_auc_"


def is_finding_metric(key: str) -> bool:
    """Whether a result key is one finding's metric of a multi-label trial (``val_auc_effusion``)."""
    return key.startswith(FINDING_METRIC_PREFIX) and key not in _TASK_OF


def _of_task(names: Iterable[str], task: str | None) -> tuple[str, ...]:
    return tuple(name for name in names if _TASK_OF.get(name) in (None, task))


def reported_by(task: str | None) -> dict[str, str]:
    """The objectives (name: mode) a trial on a ``data.task`` of ``task`` reports every epoch."""
    return {name: mode for name, mode in REPORTED_METRICS.items() if _TASK_OF.get(name) in (None, task)}


def shown_metrics(task: str | None) -> tuple[str, ...]:
    """The leaderboard's metric columns for a sweep on ``task`` (no column its trials never fill)."""
    return _of_task(SHOWN_METRICS, task)


def printed_metrics(task: str | None) -> tuple[str, ...]:
    """The printed leaderboard's metric columns for a sweep on ``task``."""
    return _of_task(PRINTED_METRICS, task)


def objective_task_problem(name: str, task: str | None) -> str | None:
    """Why ``name`` cannot be the objective of a sweep on ``task`` (its trials never report it), or None."""
    needed = _TASK_OF.get(name)
    if needed is None or needed == task:
        return None
    return (f"{name} is reported only when data.task is {needed!r} (graded classes), and this sweep's data.task "
            f"is {task!r}; set data.task: {needed} for graded classes, or choose another objective")


def race_metric(name: str) -> str:
    """The key a racing trial reports ``name``'s estimate over the folds trained so far under."""
    return f"{name}{RACE_SUFFIX}"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Objective:
    """A metric and its direction. ``sign`` turns every comparison into "smaller is better"."""

    name: str = DEFAULT_OBJECTIVE
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    @classmethod
    def of(cls, name: str, mode: str | None = None) -> "Objective":
        """``name`` with ``mode``, or with the direction the table gives it."""
        return cls(name, mode or REPORTED_METRICS.get(name, "max"))

    @property
    def sign(self) -> int:
        """+1 for ``min``, -1 for ``max``: ``sign * value`` is smaller for a better value."""
        return 1 if self.mode == "min" else -1

    @property
    def order_ascending(self) -> bool:
        """Sort ascending to put the best first."""
        return self.mode == "min"

    def better(self, value: Any, than: Any) -> bool:
        """Is ``value`` strictly better than ``than``? A missing or non-finite ``than`` is beaten by
        any finite value; a non-finite ``value`` never wins."""
        if not _finite(value):
            return False
        return not _finite(than) or self.sign * value < self.sign * than

    def rank_key(self, value: Any) -> float:
        """A sort key that puts the best value first and missing or non-finite values last."""
        return self.sign * float(value) if _finite(value) else math.inf

    def best(self, items: Iterable[T], key: Callable[[T], Any] = lambda item: item) -> T | None:
        """The item with the best ``key`` (the first of ties), or None when no item has a finite one."""
        chosen: T | None = None
        chosen_value: Any = None
        for item in items:
            value = key(item)
            if self.better(value, chosen_value):
                chosen, chosen_value = item, value
        return chosen

    def sorted(self, items: Iterable[T], key: Callable[[T], Any] = lambda item: item) -> list[T]:
        """``items`` best first (a stable sort: ties keep their order); missing values last."""
        return sorted(items, key=lambda item: self.rank_key(key(item)))


@dataclass(frozen=True)
class TrialSummary:
    """A trial's best epoch by the objective: the value, the epoch, that epoch's whole result, and
    how many epochs the trial reported."""

    best_value: float
    best_epoch: int
    at_best: dict[str, Any]
    epochs_run: int


def trial_summary(history: Iterable[Mapping[str, Any]], objective: Objective) -> TrialSummary | None:
    """The one computation of a trial's best epoch: the first epoch whose value of the objective is
    the best finite one (``Objective.best``). None when no epoch has a finite value (a failed trial,
    or one stopped while racing over folds). The streaming places (the searcher, the MLflow
    callback, ``LocalReporter``) compare epoch by epoch with ``Objective.better``, the same rule."""
    rows = [dict(row) for row in history]
    best = objective.best(rows, key=lambda row: row.get(objective.name))
    if best is None:
        return None
    epochs = max((int(row[EPOCH]) for row in rows if _finite(row.get(EPOCH))), default=len(rows))
    return TrialSummary(float(best[objective.name]), int(best.get(EPOCH, 0) or 0), best, epochs)
