"""``medtune best``: the best configuration of a finished sweep, read from MLflow.

It works from any machine that reaches the tracking server, without the Ray results: the sweep's
parent run holds the validated space (``space.yaml``), its child runs hold each trial's flat
params and per-epoch metrics. Trials are ranked by the best value of the chosen metric over their
epochs (the sweep's objective by default), exactly as the sweep's own leaderboard ranks them.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml

from search.results import LeaderboardEntry, best_config_document
from search.spec import MetricSpec, SpecError, SweepSpec, validate_spec

SHOWN = ("val_loss", "val_auc", "val_acc", "val_sensitivity", "val_specificity")


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


def _entry(client: Any, child: Any, metric: str, mode: str) -> LeaderboardEntry | None:
    from trainables.config import config_keys, parse_param

    history = [m for m in client.get_metric_history(child.info.run_id, metric) if not math.isnan(m.value)]
    if not history:
        return None
    pick = (min if mode == "min" else max)(history, key=lambda m: m.value)
    shown = {}
    for name in SHOWN:
        at_step = [m.value for m in client.get_metric_history(child.info.run_id, name) if m.step == pick.step]
        if at_step:
            shown[name] = at_step[-1]
    keys = config_keys()
    config = {k: parse_param(k, v) for k, v in child.data.params.items() if k in keys}
    epochs = int(child.data.tags.get("medtune.last_epoch", max(m.step for m in history)))
    return LeaderboardEntry(child.data.tags.get("medtune.trial_id", child.info.run_id), config, float(pick.value),
                            int(pick.step), epochs, shown)


def best_from_mlflow(experiment: str, tracking_uri: str, *, metric: str | None = None, mode: str | None = None,
                     parent_run_id: str | None = None, top: int = 5) -> tuple[dict[str, Any], list[LeaderboardEntry]]:
    """(best-config document, ranked entries) of the newest finished sweep of ``experiment``."""
    from trainables.config import REPORTED_METRICS

    from search.credentials import redact_uri
    from search.tracking import check_tracking_server, mlflow_client, resolved_tracking_uri

    uri = resolved_tracking_uri(tracking_uri)
    where = f"MLflow at {redact_uri(uri)}"
    check_tracking_server(uri, where, key="--tracking-uri")
    client = mlflow_client(uri)
    parent = _sweep_parent(client, experiment, parent_run_id, where)
    spec = _space_of(uri, parent.info.run_id, where)
    if metric is not None:
        if metric not in REPORTED_METRICS:
            raise SpecError(where, [("--metric", f"{metric!r} is not reported; reported: {', '.join(REPORTED_METRICS)}")])
        spec = dataclasses.replace(spec, metric=MetricSpec(metric, mode or REPORTED_METRICS[metric]))
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=5000)
    entries = [e for e in (_entry(client, c, spec.metric.name, spec.metric.mode) for c in children) if e is not None]
    if not entries:
        raise SpecError(where, [("experiment", f"sweep {parent.info.run_id} has no trial with {spec.metric.name} values")])
    sign = 1 if spec.metric.mode == "min" else -1
    entries.sort(key=lambda e: sign * e.best_value)
    run_name = parent.data.tags.get("medtune.run_name", parent.info.run_name)
    doc = best_config_document(spec, entries[0], run_name, top=entries[:top], parent_run_id=parent.info.run_id,
                               tracking_uri=uri)  # written without its user info (best_config_document)
    return doc, entries
