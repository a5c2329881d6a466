"""``medtune best``: the best configuration of a finished sweep, ranked from what MLflow holds.

It works from any machine that reaches the tracking server, without the Ray results
(``tracking/sweep_reader.py`` does the reading). Trials are ranked by the best value of the chosen
metric over their epochs (the sweep's objective by default), exactly as the sweep's own
leaderboard ranks them. By the sweep's objective that is the leaderboard itself, one download for
any number of trials; by another metric, or for a sweep whose leaderboard never reached MLflow,
the child runs are read (their closing tags where they have them, else their metric histories).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from medtune.search.credentials import redact_uri
from medtune.search.results.leaderboard import LeaderboardEntry, best_config_document
from medtune.search.spec.sweep_spec import MetricSpec, SpecError, SweepSpec, validate_spec
from medtune.search.tracking.client import check_tracking_server, resolved_tracking_uri
from medtune.search.tracking.sweep_reader import ParentRun, SweepReader, TrialRun
from medtune.trainables.config import config_keys, parse_param
from medtune.trainables.objective import (
    EPOCH,
    REPORTED_METRICS,
    SHOWN_METRICS,
    Objective,
    objective_task_problem,
    shown_metrics,
    trial_summary,
)


def _objective(spec: SweepSpec) -> Objective:
    return Objective(spec.metric.name, spec.metric.mode)


def _config_of(trial: TrialRun) -> dict[str, Any]:
    keys = config_keys()
    return {k: parse_param(k, v) for k, v in trial.params.items() if k in keys}


def _entry_from_tags(trial: TrialRun, metric: str) -> LeaderboardEntry | None:
    """A finished trial's entry from the tags its run was closed with (``medtune.best_<metric>``,
    ``medtune.best_epoch``, the best over all its epochs): no metric history is read."""
    best = trial.best(metric)
    if best is None:
        return None
    value, epoch = best
    return LeaderboardEntry(trial.trial_id, _config_of(trial), value, epoch, trial.last_epoch(epoch), {})


def _entry_from_history(reader: SweepReader, trial: TrialRun, objective: Objective,
                        shown: tuple[str, ...] = SHOWN_METRICS) -> LeaderboardEntry | None:
    """An entry from the run's metric history: another metric than the sweep's, or a run not closed
    (with the ``shown`` metrics at its best epoch)."""
    history = [{EPOCH: step, objective.name: value} for step, value in reader.history(trial.run_id, objective.name)]
    summary = trial_summary(history, objective)  # the first of equal values, as the sweep's ranking
    if summary is None:
        return None
    return LeaderboardEntry(trial.trial_id, _config_of(trial), summary.best_value, summary.best_epoch,
                            trial.last_epoch(summary.epochs_run),
                            reader.values_at(trial.run_id, shown, summary.best_epoch))


def entries_from_leaderboard(reader: SweepReader, run_id: str, spec: SweepSpec) -> list[LeaderboardEntry] | None:
    """The sweep's own ranking, from its parent run's ``leaderboard.csv``: one download however many trials.

    None when the run has no leaderboard (a sweep that ended while MLflow was away) or it ranks by
    another metric; the child runs are read instead.
    """
    rows = reader.leaderboard_rows(run_id)
    if rows is None:
        return None
    column = f"best_{spec.metric.name}"
    if rows and column not in rows[0]:
        return None
    entries = []
    for row in rows:
        if not row[column] or math.isnan(float(row[column])):
            continue  # a trial without any value of the objective (failed)
        entries.append(LeaderboardEntry(
            row["trial_id"], {k: parse_param(k, row[k]) for k in spec.space if row.get(k)}, float(row[column]),
            int(row["best_epoch"]), int(row["epochs_run"]), {k: float(row[k]) for k in SHOWN_METRICS if row.get(k)},
            row.get("error") or None, row.get("outcome", "")))
    return _objective(spec).sorted(entries, key=lambda e: e.best_value)


def entries_from_child_runs(reader: SweepReader, parent: ParentRun, spec: SweepSpec, top: int,
                            sweeps_objective: bool) -> list[LeaderboardEntry]:
    """Every trial ranked from its child run: by the tags it was closed with when ranking by the
    sweep's own objective, else (or for a run never closed) from its metric history."""
    objective = _objective(spec)
    shown = shown_metrics(spec.data.task)
    trials = reader.trial_runs(parent)
    entries = objective.sorted(
        [e for e in ((_entry_from_tags(t, spec.metric.name) if sweeps_objective else None)
                     or _entry_from_history(reader, t, objective, shown) for t in trials) if e is not None],
        key=lambda e: e.best_value)
    run_of_trial = {t.trial_id: t for t in trials}
    for entry in entries[:max(top, 1)]:  # the entries shown and written get their metrics at the best epoch
        if not entry.metrics_at_best:
            entry.metrics_at_best.update(reader.values_at(run_of_trial[entry.trial_id].run_id, shown,
                                                          entry.best_epoch))
    return entries


def best_from_mlflow(experiment: str, tracking_uri: str, *, metric: str | None = None, mode: str | None = None,
                     parent_run_id: str | None = None, top: int = 5) -> tuple[dict[str, Any], list[LeaderboardEntry]]:
    """(best-config document, ranked entries) of the newest finished sweep of ``experiment``."""
    uri = resolved_tracking_uri(tracking_uri)
    where = f"MLflow at {redact_uri(uri)}"
    check_tracking_server(uri, where, key="--tracking-uri")
    reader = SweepReader(uri)
    parent = reader.parent(experiment, parent_run_id, where)
    swept = validate_spec(reader.space_document(parent.run_id, where), source=f"mlflow run {parent.run_id}: space.yaml")
    spec = swept
    if metric is not None:
        if metric not in REPORTED_METRICS:
            raise SpecError(where, [("--metric", f"{metric!r} is not reported; "
                                                 f"reported: {', '.join(REPORTED_METRICS)}")])
        if problem := objective_task_problem(metric, swept.data.task):
            raise SpecError(where, [("--metric", problem)])
        spec = dataclasses.replace(spec, metric=MetricSpec(metric, Objective.of(metric, mode).mode))
    sweeps_objective = spec.metric == swept.metric
    entries = entries_from_leaderboard(reader, parent.run_id, spec) if sweeps_objective else None
    if entries is None:
        entries = entries_from_child_runs(reader, parent, spec, top, sweeps_objective)
    if not entries:
        raise SpecError(where, [("experiment", f"sweep {parent.run_id} has no trial with {spec.metric.name} values")])
    doc = best_config_document(spec, entries[0], parent.run_name, top=entries[:top], parent_run_id=parent.run_id,
                               tracking_uri=uri)  # written without its user info (best_config_document)
    return doc, entries
