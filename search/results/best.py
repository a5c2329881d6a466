"""``medtune best``: the best configuration of a finished sweep, read from MLflow.

It works from any machine that reaches the tracking server, without the Ray results: the sweep's
parent run holds the validated space (``space.yaml``) and its ranking (``leaderboard.csv``), its
child runs hold each trial's flat params and per-epoch metrics. Trials are ranked by the best value
of the chosen metric over their epochs (the sweep's objective by default), exactly as the sweep's
own leaderboard ranks them. By the sweep's objective that is the leaderboard itself, one download
for any number of trials; by another metric, or for a sweep whose leaderboard never reached MLflow,
the child runs are read (their closing tags where they have them, else their metric histories).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml

from medtune.search.results.leaderboard import SHOWN_METRICS, LeaderboardEntry, best_config_document
from medtune.search.spec.sweep_spec import MetricSpec, SpecError, SweepSpec, validate_spec

def _sweep_parent(client: Any, experiment: str, parent_run_id: str | None, where: str) -> Any:
    if parent_run_id:
        return client.get_run(parent_run_id)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SpecError(where, [("experiment", f"no MLflow experiment named {experiment!r} there")])
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`medtune.kind` = 'sweep' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SpecError(where, [("experiment", f"{experiment!r} has no finished medtune sweep (parent run) yet")])
    return runs[0]


def _space_of(tracking_uri: str, run_id: str, where: str) -> SweepSpec:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="space.yaml", dst_path=tmp,
                                                        tracking_uri=tracking_uri)
        except Exception as exc:
            raise SpecError(where, [("parent run", f"run {run_id} has no space.yaml artifact ({exc}); "
                                                   "was it made by 'medtune sweep'?")]) from None
        doc = yaml.safe_load(Path(local).read_text())
    return validate_spec(doc, source=f"mlflow run {run_id}: space.yaml")


def _config_of(child: Any) -> dict[str, Any]:
    from medtune.trainables.config import config_keys, parse_param

    keys = config_keys()
    return {k: parse_param(k, v) for k, v in child.data.params.items() if k in keys}


def _metrics_at(client: Any, child: Any, step: int) -> dict[str, float]:
    """The shown metrics at one epoch (the best one) of a trial's run."""
    shown = {}
    for name in SHOWN_METRICS:
        at_step = [m.value for m in client.get_metric_history(child.info.run_id, name) if m.step == step]
        if at_step:
            shown[name] = at_step[-1]
    return shown


def _entry_from_tags(child: Any, metric: str) -> LeaderboardEntry | None:
    """A finished trial's entry from the tags its run was closed with (``medtune.best_<metric>``,
    ``medtune.best_epoch``, the best over all its epochs): no metric history is read."""
    tags = child.data.tags
    value, epoch = tags.get(f"medtune.best_{metric}"), tags.get("medtune.best_epoch")
    if value is None or epoch is None:
        return None
    return LeaderboardEntry(tags.get("medtune.trial_id", child.info.run_id), _config_of(child), float(value),
                            int(epoch), int(tags.get("medtune.last_epoch", epoch)), {})


def _entry(client: Any, child: Any, metric: str, mode: str) -> LeaderboardEntry | None:
    """An entry from the run's metric history: another metric than the sweep's, or a run not closed."""
    history = [m for m in client.get_metric_history(child.info.run_id, metric) if not math.isnan(m.value)]
    if not history:
        return None
    pick = (min if mode == "min" else max)(history, key=lambda m: m.value)
    epochs = int(child.data.tags.get("medtune.last_epoch", max(m.step for m in history)))
    return LeaderboardEntry(child.data.tags.get("medtune.trial_id", child.info.run_id), _config_of(child),
                            float(pick.value), int(pick.step), epochs, _metrics_at(client, child, int(pick.step)))


def _child_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    """Every child run of a sweep, page by page (a search returns at most a few thousand at once)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _entries_from_leaderboard(uri: str, run_id: str, spec: SweepSpec) -> list[LeaderboardEntry] | None:
    """The sweep's own ranking, from its parent run's ``leaderboard.csv``: one download however many trials.

    None when the run has no leaderboard (a sweep that ended while MLflow was away) or it ranks by
    another metric; the child runs are read instead.
    """
    import csv

    import mlflow

    from medtune.trainables.config import parse_param

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="leaderboard.csv", dst_path=tmp,
                                                        tracking_uri=uri)
        except Exception:
            return None
        with open(local, newline="") as f:
            rows = list(csv.DictReader(f))
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
    sign = 1 if spec.metric.mode == "min" else -1
    return sorted(entries, key=lambda e: sign * e.best_value)


def _entries_from_child_runs(client: Any, parent: Any, spec: SweepSpec, top: int,
                            sweeps_objective: bool) -> list[LeaderboardEntry]:
    """Every trial ranked from its child run: by the tags it was closed with when ranking by the
    sweep's own objective, else (or for a run never closed) from its metric history."""
    children = {c.info.run_id: c for c in _child_runs(client, parent.info.experiment_id, parent.info.run_id)}
    entries = [e for e in ((_entry_from_tags(c, spec.metric.name) if sweeps_objective else None)
                           or _entry(client, c, spec.metric.name, spec.metric.mode)
                           for c in children.values()) if e is not None]
    sign = 1 if spec.metric.mode == "min" else -1
    entries.sort(key=lambda e: sign * e.best_value)
    run_of_trial = {c.data.tags.get("medtune.trial_id", run_id): c for run_id, c in children.items()}
    for entry in entries[:max(top, 1)]:  # the entries shown and written get their metrics at the best epoch
        if not entry.metrics_at_best:
            entry.metrics_at_best.update(_metrics_at(client, run_of_trial[entry.trial_id], entry.best_epoch))
    return entries


def best_from_mlflow(experiment: str, tracking_uri: str, *, metric: str | None = None, mode: str | None = None,
                     parent_run_id: str | None = None, top: int = 5) -> tuple[dict[str, Any], list[LeaderboardEntry]]:
    """(best-config document, ranked entries) of the newest finished sweep of ``experiment``."""
    from medtune.trainables.config import REPORTED_METRICS

    from medtune.search.credentials import redact_uri
    from medtune.search.tracking.client import check_tracking_server, mlflow_client, resolved_tracking_uri

    uri = resolved_tracking_uri(tracking_uri)
    where = f"MLflow at {redact_uri(uri)}"
    check_tracking_server(uri, where, key="--tracking-uri")
    client = mlflow_client(uri)
    parent = _sweep_parent(client, experiment, parent_run_id, where)
    swept = _space_of(uri, parent.info.run_id, where)
    spec = swept
    if metric is not None:
        if metric not in REPORTED_METRICS:
            raise SpecError(where, [("--metric", f"{metric!r} is not reported; reported: {', '.join(REPORTED_METRICS)}")])
        spec = dataclasses.replace(spec, metric=MetricSpec(metric, mode or REPORTED_METRICS[metric]))
    sweeps_objective = spec.metric == swept.metric
    entries = _entries_from_leaderboard(uri, parent.info.run_id, spec) if sweeps_objective else None
    if entries is None:
        entries = _entries_from_child_runs(client, parent, spec, top, sweeps_objective)
    if not entries:
        raise SpecError(where, [("experiment", f"sweep {parent.info.run_id} has no trial with {spec.metric.name} values")])
    run_name = parent.data.tags.get("medtune.run_name", parent.info.run_name)
    doc = best_config_document(spec, entries[0], run_name, top=entries[:top], parent_run_id=parent.info.run_id,
                               tracking_uri=uri)  # written without its user info (best_config_document)
    return doc, entries
