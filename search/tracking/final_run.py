"""MLflow's record of a ``medtune final`` run: one run, tagged with the sweep it came from.

The run is named ``final <sweep> <architecture> fd<frozen depth>`` (``final_run_name``) and tagged
``medtune.kind=final`` with the sweep, parent run, trial and space hash it retrained. It holds the
test metrics with their interval ends (``test_*``, the ensemble's as ``ensemble_test_*``, a
multi-class task's per-class rates as ``test_<rate>_<class>``), the best member's configuration
as params, the operating point as tags (``operating_point_tags``: the rule, the threshold on the
calibrated scale, the raw threshold and the calibration map), the output folder under ``report/``
(but for ``model/``), and the model: the bundle of ``model/`` as an MLflow model that takes raw
images and returns probabilities and the decision at the stored threshold (``models``; registered
under ``--register`` with the alias ``champion``), whose MLflow metadata carries the same operating
point (``model_metadata``). Its note links back to the sweep, whose note lists it (``run_notes``).

A thin writer over ``client``, ``models``, ``run_tags`` and ``run_notes``: the final run's steps
call ``FinalRun``'s methods in order, and everything after the report is logged (the model, the
links) is a convenience whose failure is a warning, never a lost run.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.search.spec.sweep_spec import SweepSpec
from medtune.search.tracking.run_tags import KIND_TAG

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
    tags = {KIND_TAG: "final", "medtune.epochs": str(epochs), "medtune.ensemble": str(members),
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
        for finding, threshold in getattr(report, "thresholds", {}).items():  # multi-label: one per finding
            metrics[f"{prefix}threshold_{metric_safe(finding)}"] = float(threshold)
        for class_name, values in getattr(report, "per_class", {}).items():
            for key in ("sensitivity", "specificity", "roc_auc"):
                if math.isfinite(values[key]):
                    metrics[f"{prefix}{key}_{metric_safe(class_name)}"] = float(values[key])
    return metrics


def _number(value: Any) -> float | None:
    """A JSON-able number: NaN and infinities (an ensemble's raw threshold, a 0 or 1 threshold's logit) as None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def model_metadata(report: Any, class_names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The operating point of the best model's report as the logged model's metadata (JSON-able).

    Two classes: the rule, the threshold on the calibrated scale, the same threshold on the raw
    positive-class probability and on the raw logit difference (logit[1] - logit[0] of the network),
    and the calibration map (p_cal = sigmoid(slope * that difference + intercept)); the logged model
    applies them itself (its ``score`` and ``decision``). More classes: the rule, the training class
    priors and the per-class offsets added to the log-probabilities before the argmax.
    """
    rule = str(report.threshold_rule)
    names = [str(c) for c in class_names]
    priors = getattr(report, "class_priors", None)
    if hasattr(report, "per_finding"):  # multi-label findings
        return {"medtune_operating_point": {
            "rule": rule, "class_names": names, "multilabel": True,
            "thresholds": {name: float(t) for name, t in report.thresholds.items()},
            "decision": "each finding present when sigmoid(logits[finding]) >= thresholds[finding]"}}
    if hasattr(report, "per_class"):  # more than two classes
        offsets = report.log_offsets()
        return {"medtune_operating_point": {
            "rule": rule, "class_names": names, "class_priors": priors, "class_weighted": report.class_weighted,
            "log_probability_offsets": None if offsets is None else [float(v) for v in offsets],
            "decision": "argmax over classes of log(softmax(logits)) + log_probability_offsets (none: plain argmax)"}}
    from medtune.trainables.calibration import ScoreCalibration

    calibration = report.calibration_map if isinstance(report.calibration_map, dict) else None
    raw_logit = ScoreCalibration.from_dict(calibration).raw_logit_threshold(report.threshold) if calibration else None
    return {"medtune_operating_point": {
        "rule": rule, "class_names": names, "positive_class": names[-1],
        "threshold": _number(report.threshold), "raw_threshold": _number(report.raw_threshold),
        "raw_logit_threshold": _number(raw_logit), "calibration": calibration,
        "decision": "positive when sigmoid(slope * (logits[1] - logits[0]) + intercept) >= threshold, i.e. when "
                    "logits[1] - logits[0] >= raw_logit_threshold; the model returns that calibrated score and "
                    "decision"}}


def operating_point_tags(report: Any) -> dict[str, str]:
    """The final run's tags for the best model's operating point (what ``model_metadata`` holds, flat)."""
    tags = {"medtune.operating_point": str(report.threshold_rule)}
    if hasattr(report, "per_finding"):
        tags["medtune.thresholds"] = json.dumps(report.thresholds, sort_keys=True)
        return tags
    if hasattr(report, "per_class"):
        if getattr(report, "class_priors", None) is not None:
            tags["medtune.class_priors"] = json.dumps(report.class_priors)
            tags["medtune.class_weighted"] = str(report.class_weighted).lower()
        return tags
    tags["medtune.threshold"] = repr(float(report.threshold))
    tags["medtune.raw_threshold"] = repr(float(report.raw_threshold))
    if report.calibration_map is not None:
        tags["medtune.calibration"] = json.dumps(report.calibration_map, sort_keys=True)
    return tags


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

    def log_report(self, reports: list[Any], config: dict[str, Any], out: Path,
                   skip: tuple[str, ...] = ()) -> None:
        """The test metrics, the best member's configuration as params, its operating point as tags,
        and ``out`` under ``report/``, but for its entries named in ``skip`` (the model bundle, which
        the MLflow model holds: logged once, not twice)."""
        from mlflow.entities import Metric, Param, RunTag

        from medtune.search.tracking.trial_runs import trial_params

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, 0) for key, value in report_metrics(reports).items()]
        params = [Param(k, v) for k, v in trial_params(config).items()]
        tags = [RunTag(k, v) for k, v in operating_point_tags(reports[0]).items()]
        self.client.log_batch(self.run_id, metrics=metrics, params=params, tags=tags)
        if not skip:
            self.client.log_artifacts(self.run_id, str(out), artifact_path="report")
            return
        for entry in sorted(out.iterdir()):
            if entry.name in skip:
                continue
            if entry.is_dir():
                self.client.log_artifacts(self.run_id, str(entry), artifact_path=f"report/{entry.name}")
            else:
                self.client.log_artifact(self.run_id, str(entry), artifact_path="report")

    def log_model(self, bundle_dir: Path, config: dict[str, Any], example_images: Any, register: str | None,
                  test_metrics: dict[str, float], metadata: dict[str, Any] | None = None) -> str | None:
        """The model bundle in ``bundle_dir`` as an MLflow model that takes raw images
        (``final-<architecture>``, ``models.log_image_model``), with ``metadata`` (``model_metadata``:
        its operating point) and an input example of ``example_images``; its URI, or None when it
        could not be logged (the report is logged already; a model-format problem must not lose it)."""
        from medtune.search.tracking.models import log_image_model
        from medtune.search.tracking.trial_runs import trial_params

        try:
            return log_image_model(self.tracking_uri, self.experiment_id, self.run_id, bundle_dir, example_images,
                                   register, name=f"final-{config.get('architecture')}", params=trial_params(config),
                                   metrics={f"test_{k}": v for k, v in test_metrics.items()}, alias=CHAMPION_ALIAS,
                                   metadata=metadata).uri
        except Exception as exc:
            from medtune.search.credentials import redact_text

            log.warning("could not log the final model as an MLflow model: %s", redact_text(str(exc)))
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
