"""The final model's test report on multi-label findings (``data.task: multilabel``).

Each finding is a two-class question of its own (that finding against its absence), so each gets
what a two-class report gives, by the same code: a decision threshold chosen on held-out scores
(the held-out part of val, or out-of-fold predictions after a cross-validated sweep) by the same
operating-point rule (``medtune.trainables.operating_point.choose_threshold``; ``auto`` is the
two-class default), then its sensitivity, specificity and AUC on test at that threshold, each with
a 95% percentile bootstrap interval over test images (``binary_report.point_metrics`` and
``bootstrap_intervals``). The summaries are the macro AUC (the mean over findings, what trials
report as ``val_auc``) and the micro AUC (one AUC over every image-finding pair, where common
findings weigh more), with intervals from resampling whole images, so a finding's correlation with
another stays in every resample.

A finding that cannot be scored is named in ``skipped`` with the reason, never reported as NaN: one
without a positive or a negative held-out image has no threshold to choose, one without both on test
no sensitivity, specificity or AUC. The scores are the model's own sigmoid outputs: they are not
calibrated per finding (a Platt map per finding would need held-out positives of every finding, which
the rare ones do not have), so every rule that reads probabilities reads the model's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medtune.trainables.binary_report import bootstrap_intervals, point_metrics
from medtune.trainables.bootstrap import BOOTSTRAP_SAMPLES, CI_LEVEL, percentile_bootstrap
from medtune.trainables.multilabel import macro_auc, metric_safe, micro_auc, present
from medtune.trainables.operating_point import choose_threshold, model_anchor, parse_operating_point

#: ``kind`` and ``task`` of the report in report.json.
MULTILABEL = "multilabel"
#: The summaries over findings, first in every table.
SUMMARY = ("auc_macro", "auc_micro")
#: What the report gives of each finding (``per_finding``), each with its interval.
PER_FINDING = ("roc_auc", "sensitivity", "specificity")


def summary_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The macro and micro AUC over findings (``multilabel.macro_auc`` and ``micro_auc``)."""
    return {"auc_macro": macro_auc(probs, labels), "auc_micro": micro_auc(probs, labels)}


@dataclass
class MultilabelReport:
    """A multi-label model's (or ensemble's) test report; ``to_dict`` is its part of report.json.

    ``metrics``/``intervals`` hold the summaries and, flattened, each finding's AUC, sensitivity and
    specificity (``auc_<finding>``, ``sensitivity_<finding>``, ``specificity_<finding>``): what the
    final MLflow run logs as ``test_<name>`` with its interval ends. ``thresholds``: each scored
    finding's decision threshold; ``per_finding``: the same numbers by finding for the tables."""

    name: str
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    per_finding: dict[str, dict[str, Any]]
    thresholds: dict[str, float]
    skipped: dict[str, str]
    n_test: int
    class_names: tuple[str, ...]
    threshold_rule: str = "unspecified"
    threshold: float = math.nan  # none: one threshold per finding (``thresholds``)
    class_weighted: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> tuple[str, ...]:
        return SUMMARY

    def to_dict(self) -> dict[str, Any]:
        return {"kind": MULTILABEL, "task": MULTILABEL, "name": self.name, "n_test": self.n_test,
                "class_names": list(self.class_names), "threshold_rule": self.threshold_rule,
                "metrics": {m: {"value": self.metrics[m], "ci95": list(self.intervals[m])} for m in SUMMARY},
                "per_finding": self.per_finding, "thresholds": self.thresholds, "skipped": self.skipped,
                "class_weighted": self.class_weighted}


def _finding(val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray, test_labels: np.ndarray,
             rule: Any, anchor: float, samples: int, seed: int) -> tuple[dict[str, Any] | None, str | None]:
    """One finding's threshold and test numbers, or the reason it cannot be scored."""
    if not present(val_labels[:, None])[0]:
        return None, "no positive or no negative held-out image to choose its threshold on"
    if not present(test_labels[:, None])[0]:
        return None, "no positive or no negative test image"
    choice = choose_threshold(val_scores, val_labels, rule, anchor)
    metrics = point_metrics(test_scores, test_labels, choice.value)
    intervals = bootstrap_intervals(test_scores, test_labels, choice.value, samples=samples, seed=seed)
    values = {m: {"value": metrics[m], "ci95": list(intervals[m])} for m in PER_FINDING}
    return {"threshold": float(choice.value), "n_positive": int(test_labels.sum()), **values}, None


def build_multilabel_report(name: str, val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray,
                            test_labels: np.ndarray, class_names: tuple[str, ...], seed: int = 0,
                            samples: int = BOOTSTRAP_SAMPLES, *, threshold_rule: Any = "auto",
                            train_labels: np.ndarray | None = None, class_weighted: bool = True,
                            level: float = CI_LEVEL) -> MultilabelReport:
    """Each finding's threshold from the held-out scores by ``threshold_rule``, then its test numbers,
    and the macro and micro AUC with intervals. ``train_labels`` give each finding's training share,
    which places the model's own balanced point (``model_anchor``) when it trained without
    ``pos_weight`` (``class_weighted`` off)."""
    point = parse_operating_point(threshold_rule)
    val_scores, test_scores = np.asarray(val_scores, dtype=np.float64), np.asarray(test_scores, dtype=np.float64)
    val_labels, test_labels = np.asarray(val_labels, dtype=np.int64), np.asarray(test_labels, dtype=np.int64)
    shares = (np.asarray(train_labels).mean(axis=0) if train_labels is not None and len(train_labels)
              else np.full(len(class_names), 0.5))
    metrics = summary_metrics(test_scores, test_labels)
    intervals = percentile_bootstrap(lambda idx: summary_metrics(test_scores[idx], test_labels[idx]),
                                     len(test_labels), samples, seed, level)
    per_finding: dict[str, dict[str, Any]] = {}
    thresholds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for j, finding in enumerate(class_names):
        numbers, why = _finding(val_scores[:, j], val_labels[:, j], test_scores[:, j], test_labels[:, j], point,
                                model_anchor(class_weighted, float(shares[j])), samples, seed)
        if numbers is None:
            skipped[finding] = str(why)
            continue
        per_finding[finding], thresholds[finding] = numbers, numbers["threshold"]
        safe = metric_safe(finding)
        for m, key in (("roc_auc", "auc"), ("sensitivity", "sensitivity"), ("specificity", "specificity")):
            metrics[f"{key}_{safe}"] = numbers[m]["value"]
            intervals[f"{key}_{safe}"] = tuple(numbers[m]["ci95"])
    return MultilabelReport(name=name, metrics=metrics, intervals=intervals, per_finding=per_finding,
                            thresholds=thresholds, skipped=skipped, n_test=int(len(test_labels)),
                            class_names=tuple(class_names), threshold_rule=point.label,
                            class_weighted=bool(class_weighted))


def _cell(value: dict[str, Any]) -> str:
    low, high = value["ci95"]
    return f"{value['value']:.3f} ({low:.3f}-{high:.3f})"


def multilabel_markdown(reports: list[MultilabelReport], title: str) -> str:
    """The summaries side by side, then each report's findings: threshold, AUC, sensitivity and
    specificity with intervals, and the findings it could not score."""
    first = reports[0]
    lines = [f"# {title}", "", f"Held-out test split, evaluated once; {len(first.class_names)} findings, each "
             f"decided at its own threshold (operating point {first.threshold_rule}, chosen on held-out scores). 95% "
             "percentile bootstrap intervals over test images; auc_macro is the mean of the findings' AUCs, "
             "auc_micro one AUC over every image-finding pair.", "",
             "| metric | " + " | ".join(r.name for r in reports) + " |",
             "| --- | " + " | ".join("---" for _ in reports) + " |"]
    for m in SUMMARY:
        lines.append(f"| {m} | " + " | ".join(
            f"{r.metrics[m]:.3f} ({r.intervals[m][0]:.3f}-{r.intervals[m][1]:.3f})" for r in reports) + " |")
    lines.append("")
    for r in reports:
        lines += [f"**{r.name}**: per finding", "", "| finding | positives | threshold | AUC | sensitivity | "
                  "specificity |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {name} | {v['n_positive']} | {v['threshold']:.3f} | {_cell(v['roc_auc'])} | "
                  f"{_cell(v['sensitivity'])} | {_cell(v['specificity'])} |" for name, v in r.per_finding.items()]
        lines += [f"| {name} | - | - | not scored: {why} | | |" for name, why in r.skipped.items()]
        lines.append("")
    return "\n".join(lines)
