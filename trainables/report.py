"""The final model's test report: a threshold chosen on validation data, metrics with 95% CIs.

Clinicians read sensitivity and specificity at one operating point, not an AUC at 0.5. The
threshold is chosen on validation predictions (Youden's J: the point of the ROC curve farthest
above chance) and only then applied to the test predictions, which are looked at once. Every
metric carries a 95% percentile bootstrap interval (test images resampled with replacement,
seeded), so two models' reports can be compared honestly. Pure numpy/sklearn: the numbers can be
recomputed from the saved predictions alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

BOOTSTRAP_SAMPLES = 1000
CI_LEVEL = 0.95
METRICS = ("accuracy", "roc_auc", "sensitivity", "specificity", "precision", "f1")


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold that maximises sensitivity + specificity - 1 on (validation) data."""
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def confusion(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, int]:
    predicted = scores >= threshold
    positive = labels == 1
    return {"tp": int((predicted & positive).sum()), "fn": int((~predicted & positive).sum()),
            "tn": int((~predicted & ~positive).sum()), "fp": int((predicted & ~positive).sum())}


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def point_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, ROC AUC, sensitivity, specificity, precision and F1 at ``threshold``."""
    c = confusion(scores, labels, threshold)
    sensitivity = _ratio(c["tp"], c["tp"] + c["fn"])
    precision = _ratio(c["tp"], c["tp"] + c["fp"])
    f1 = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
    auc = float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "accuracy": _ratio(c["tp"] + c["tn"], len(labels)),
        "roc_auc": auc,
        "sensitivity": sensitivity,
        "specificity": _ratio(c["tn"], c["tn"] + c["fp"]),
        "precision": precision,
        "f1": f1,
    }


def bootstrap_intervals(scores: np.ndarray, labels: np.ndarray, threshold: float, samples: int = BOOTSTRAP_SAMPLES,
                        seed: int = 0, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric (resampling images with replacement)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        for name, value in point_metrics(scores[idx], labels[idx], threshold).items():
            draws[name].append(value)
    tail = (1 - level) / 2 * 100
    out = {}
    for name, values in draws.items():
        finite = np.array([v for v in values if not math.isnan(v)])
        out[name] = (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))) if len(finite) else (math.nan, math.nan)
    return out


@dataclass
class TestReport:
    """What the final run reports about one model (or ensemble) on the held-out test split."""

    name: str
    threshold: float
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    confusion: dict[str, int]
    n_test: int
    class_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "threshold": self.threshold, "n_test": self.n_test,
            "class_names": list(self.class_names), "confusion_matrix": self.confusion,
            "metrics": {m: {"value": self.metrics[m], "ci95": list(self.intervals[m])} for m in METRICS},
        }


def build_report(name: str, val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray,
                 test_labels: np.ndarray, class_names: tuple[str, ...], seed: int = 0) -> TestReport:
    """Threshold from validation, then metrics and intervals on test (binary: positive = last class)."""
    threshold = youden_threshold(val_scores, val_labels)
    return TestReport(
        name=name,
        threshold=threshold,
        metrics=point_metrics(test_scores, test_labels, threshold),
        intervals=bootstrap_intervals(test_scores, test_labels, threshold, seed=seed),
        confusion=confusion(test_scores, test_labels, threshold),
        n_test=int(len(test_labels)),
        class_names=tuple(class_names),
    )


def report_markdown(reports: list[TestReport], title: str) -> str:
    """Side-by-side table of reports (single model, ensemble), readable in MLflow's artifact view."""
    lines = [f"# {title}", "", "Held-out test split, evaluated once. Decision threshold chosen on validation data "
             "(Youden's J); 95% percentile bootstrap intervals over test images.", ""]
    lines.append("| metric | " + " | ".join(r.name for r in reports) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in reports) + " |")
    for m in METRICS:
        cells = [f"{r.metrics[m]:.3f} ({r.intervals[m][0]:.3f}-{r.intervals[m][1]:.3f})" for r in reports]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("| threshold | " + " | ".join(f"{r.threshold:.3f}" for r in reports) + " |")
    lines.append("")
    for r in reports:
        neg, pos = r.class_names[0], r.class_names[-1]
        c = r.confusion
        lines += [f"**{r.name}**: confusion matrix (rows: true, columns: predicted), n = {r.n_test}", "",
                  f"| | {neg} | {pos} |", "| --- | --- | --- |",
                  f"| {neg} | {c['tn']} | {c['fp']} |", f"| {pos} | {c['fn']} | {c['tp']} |", ""]
    return "\n".join(lines)
