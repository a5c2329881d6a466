"""MLflow's record of a ``medtune final`` run: one run, tagged with the sweep it came from.

The run is named ``final <sweep> <architecture> fd<frozen depth>`` (``final_run_name``) and tagged
``medtune.kind=final`` with the sweep, parent run, trial and space hash it retrained. It holds the
test metrics with their interval ends (``test_*``, the ensemble's as ``ensemble_test_*``, a
multi-class task's per-class rates as ``test_<rate>_<class>``), the best member's configuration
as params, the output folder under ``report/``, and the model in ``pt2`` form (registered under
``--register`` with the alias ``champion``). Its note links back to the sweep, whose note lists
it (``run_notes``).

A thin writer over ``client``, ``models``, ``run_tags`` and ``run_notes``: the final run's steps
call ``FinalRun``'s methods in order, and everything after the report is logged (the model, the
links) is a convenience whose failure is a warning, never a lost run.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.search.spec.sweep_spec import SweepSpec

log = logging.getLogger(__name__)

#: The registry alias of the version ``medtune final --register`` creates.
CHAMPION_ALIAS = "champion"

#: What ``ui_links.final_link_lines`` takes to link the sweep's trials: (experiment id, parent
#: run id, metric, mode).
SweepLink = tuple[str, str, str, str]


def final_run_name(spec: SweepSpec, config: dict[str, Any], members: int) -> str:
    """``final <sweep> <architecture> fd<frozen depth>`` (``ensemble of K`` when there are K members):
    what the runs table shows, so the final run is recognisable without opening it."""
    sweep = spec.provenance.get("sweep") or spec.name
    name = f"final {sweep} {config.get('architecture')} fd{config.get('frozen_depth')}"
    return name + (f" ensemble of {members}" if members > 1 else "")


def metric_safe(name: str) -> str:
    """A class name as part of an MLflow metric key (letters, digits, _ - . / and spaces only)."""
    return re.sub(r"[^\w\-. /]", "_", name).strip() or "class"


def final_tags(spec: SweepSpec, members: int, epochs: int, threshold_rule: str) -> dict[str, str]:
    """medtune's tags of the final run: what it is, how it trained, and the sweep it came from."""
    tags = {"medtune.kind": "final", "medtune.epochs": str(epochs), "medtune.ensemble": str(members),
            "medtune.threshold_rule": threshold_rule,
            "medtune.cv_folds": str(spec.search.cv if isinstance(spec.search.cv, int) else 0)}
    for key in ("sweep", "parent_run_id", "trial_id", "space_hash"):
        if spec.provenance.get(key) is not None:
            tags[f"medtune.sweep_{key}" if key != "sweep" else "medtune.sweep"] = str(spec.provenance[key])
    return tags


def report_metrics(reports: list[Any]) -> dict[str, float]:
    """Every report's test metrics with their 95% interval ends, its threshold (when it has one) and,
    for a multi-class report, each class's one-vs-rest rates; the first report is ``test_*``, the
    ensemble's ``ensemble_test_*``."""
    metrics: dict[str, float] = {}
    for report in reports:
        prefix = "test_" if report is reports[0] else "ensemble_test_"
        for name, value in report.metrics.items():
            low, high = report.intervals[name]
            metrics.update({f"{prefix}{name}": float(value), f"{prefix}{name}_ci_low": float(low),
                            f"{prefix}{name}_ci_high": float(high)})
        if math.isfinite(report.threshold):
            metrics[f"{prefix}threshold"] = float(report.threshold)
        for class_name, values in getattr(report, "per_class", {}).items():
            for key in ("sensitivity", "specificity", "roc_auc"):
                if math.isfinite(values[key]):
                    metrics[f"{prefix}{key}_{metric_safe(class_name)}"] = float(values[key])
    return metrics


@dataclass
class FinalRun:
    """The final run in MLflow, open from ``start`` until ``finish``."""

    client: Any
    tracking_uri: str
    experiment_id: str
    run_id: str

    @classmethod
    def start(cls, spec: SweepSpec, config: dict[str, Any], members: int, epochs: int,
              threshold_rule: str) -> "FinalRun":
        """Create the run in the sweep's experiment (``provenance.experiment``, else the spec's)."""
        from medtune.search.tracking.client import ensure_experiment, mlflow_client, resolved_tracking_uri
        from medtune.search.tracking.run_tags import run_tags

        tracking_uri = resolved_tracking_uri(spec.mlflow.tracking_uri)
        client = mlflow_client(tracking_uri)
        experiment = spec.provenance.get("experiment") or spec.experiment_name
        experiment_id = ensure_experiment(client, experiment, spec.mlflow.artifact_location)
        run = client.create_run(experiment_id, run_name=final_run_name(spec, config, members),
                                tags=run_tags(final_tags(spec, members, epochs, threshold_rule)))
        return cls(client, tracking_uri, experiment_id, run.info.run_id)

    def log_report(self, reports: list[Any], config: dict[str, Any], out: Path) -> None:
        """The test metrics, the best member's configuration as params, and ``out`` under ``report/``."""
        from mlflow.entities import Metric, Param

        from medtune.search.tracking.trial_runs import trial_params

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, 0) for key, value in report_metrics(reports).items()]
        params = [Param(k, v) for k, v in trial_params(config).items()]
        self.client.log_batch(self.run_id, metrics=metrics, params=params)
        self.client.log_artifacts(self.run_id, str(out), artifact_path="report")

    def log_model(self, model: Any, config: dict[str, Any], test_split: Any, register: str | None,
                  test_metrics: dict[str, float]) -> str | None:
        """The model as an MLflow model (``final-<architecture>``); its URI, or None when it could
        not be logged (the report is logged already; a model-format problem must not lose it)."""
        from medtune.search.tracking.models import log_pt2_model
        from medtune.search.tracking.trial_runs import trial_params
        from medtune.trainables.config import TrialConfig

        try:
            cfg = TrialConfig.from_dict(config)
            return log_pt2_model(self.tracking_uri, self.experiment_id, self.run_id, model, cfg, test_split, register,
                                 name=f"final-{cfg.architecture}", params=trial_params(config),
                                 metrics={f"test_{k}": v for k, v in test_metrics.items()}, alias=CHAMPION_ALIAS).uri
        except Exception as exc:
            log.warning("could not log the final model as an MLflow model: %s", exc)
            return None

    def link_sweep(self, spec: SweepSpec, report: Any) -> None:
        """Notes both ways: this run's points to its sweep, the sweep's lists this run."""
        from medtune.search.tracking.run_notes import link_final_and_sweep

        try:
            link_final_and_sweep(self.client, spec, self.experiment_id, self.run_id, report)
        except Exception as exc:  # the links are a convenience; the run and its report are logged
            log.warning("could not link the final run and its sweep in MLflow: %s", exc)

    def sweep_link(self, spec: SweepSpec) -> SweepLink | None:
        """Where the sweep's trials are, for the printed links; None without a sweep or when its
        parent run is not in this store (a warning: the final run's own links still count)."""
        from medtune.search.credentials import redact_text

        parent = spec.provenance.get("parent_run_id")
        if not parent:
            return None
        try:
            experiment_id = self.client.get_run(parent).info.experiment_id
        except Exception as exc:
            log.warning("no link to sweep %s: %s", parent, redact_text(str(exc)))
            return None
        return (experiment_id, str(parent), spec.metric.name, spec.metric.mode)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED")
