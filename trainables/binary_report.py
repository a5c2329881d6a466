"""The final model's test report on a two-class task: an operating point chosen on held-out data, metrics with 95% CIs.

Clinicians read sensitivity and specificity at one operating point, not an AUC at 0.5. The
threshold is chosen on held-out predictions (``medtune.trainables.operating_point``, on scores
calibrated by ``medtune.trainables.calibration``) and only then applied to the test predictions,
which are looked at once. Every metric carries a 95% percentile bootstrap interval (test images
resampled with replacement, seeded), so two models' reports can be compared honestly; balanced
accuracy is among them because it is what the default operating point is judged on. Pure
numpy/sklearn: the numbers can be recomputed from the saved predictions alone.

The report also keeps what a reader needs to judge the operating point: every other rule's
threshold and test numbers (``by_rule``), the test metrics at 0.5 on the *uncalibrated* scores (the
untuned default), the threshold on the uncalibrated scale (``raw_threshold``: the logged model
outputs uncalibrated logits), the calibration map, and the expected calibration error and Brier
score on test before and after calibration.

The threshold rules used to live here; their names are re-exported so old imports keep working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from medtune.trainables.bootstrap import BOOTSTRAP_SAMPLES, CI_LEVEL, percentile_bootstrap  # noqa: F401
from medtune.trainables.calibration import ScoreCalibration, expected_calibration_error
from medtune.trainables.operating_point import (  # noqa: F401  (re-exported: the rules' old home)
    DEFAULT_OPERATING_POINT,
    DEFAULT_THRESHOLD_RULE,
    FIXED_RULE,
    J_TIE_TOLERANCE,
    LOGIT_EPS,
    REPORTED_RULES,
    SINGLE_CLASS_RULE,
    THRESHOLD_RULES,
    OperatingPoint,
    ThresholdChoice,
    choose_threshold,
    describe_threshold_rule,
    parse_operating_point,
    youden_threshold,
)

METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "precision", "f1")
#: The columns of each ``by_rule`` row.
BY_RULE_COLUMNS = ("threshold", "accuracy", "balanced_accuracy", "sensitivity", "specificity")


def confusion(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, int]:
    predicted = scores >= threshold
    positive = labels == 1
    return {"tp": int((predicted & positive).sum()), "fn": int((~predicted & positive).sum()),
            "tn": int((~predicted & ~positive).sum()), "fp": int((predicted & ~positive).sum())}


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def point_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, balanced accuracy, ROC AUC, sensitivity, specificity, precision and F1 at ``threshold``."""
    c = confusion(scores, labels, threshold)
    sensitivity = _ratio(c["tp"], c["tp"] + c["fn"])
    specificity = _ratio(c["tn"], c["tn"] + c["fp"])
    precision = _ratio(c["tp"], c["tp"] + c["fp"])
    f1 = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
    auc = float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "accuracy": _ratio(c["tp"] + c["tn"], len(labels)),
        "balanced_accuracy": (sensitivity + specificity) / 2,  # NaN when a class is missing
        "roc_auc": auc,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": f1,
    }


def bootstrap_intervals(scores: np.ndarray, labels: np.ndarray, threshold: float, samples: int = BOOTSTRAP_SAMPLES,
                        seed: int = 0, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric at ``threshold``."""
    return percentile_bootstrap(lambda idx: point_metrics(scores[idx], labels[idx], threshold), len(labels),
                                samples, seed, level)


@dataclass
class TestReport:
    """What the final run reports about one model (or ensemble) on the held-out test split.

    Besides the metrics at the chosen threshold it keeps how that threshold was chosen
    (``threshold_rule``), the held-out Youden tie (``tied_interval``, its ``tied_logit_width``), the
    metrics at 0.5 on the uncalibrated scores (``metrics_at_half``: what the untuned default would
    have given), every reported rule's threshold and test numbers (``by_rule``), and the calibration:
    the map (one dict; a list of the members' maps for an ensemble, which averages their calibrated
    probabilities), the threshold on the uncalibrated scale (``raw_threshold``; NaN for an ensemble,
    whose members have maps of their own) and ECE and Brier on test before and after calibration.
    """

    name: str
    threshold: float
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    confusion: dict[str, int]
    n_test: int
    class_names: tuple[str, ...]
    threshold_rule: str = "unspecified"
    tied_interval: tuple[float, float] = (math.nan, math.nan)
    tied_logit_width: float = math.nan
    metrics_at_half: dict[str, float] = field(default_factory=dict)
    #: Every reported rule's threshold on the same held-out scores and its test numbers: what the
    #: choice of rule was worth on this test split (read, never used to choose).
    by_rule: dict[str, dict[str, float]] = field(default_factory=dict)
    raw_threshold: float = math.nan
    calibration_map: Any = None
    #: The model's own balanced point on the calibrated scale, where ``balanced-1se`` starts from.
    anchor: float = math.nan
    ece: dict[str, float] = field(default_factory=dict)  # "before" / "after" calibration, on test
    brier: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "threshold": self.threshold, "raw_threshold": self.raw_threshold,
            "anchor": self.anchor,
            "n_test": self.n_test,
            "class_names": list(self.class_names), "confusion_matrix": self.confusion,
            "metrics": {m: {"value": self.metrics[m], "ci95": list(self.intervals[m])}
                        for m in METRICS if m in self.metrics},
            "threshold_rule": self.threshold_rule,
            "tied_interval": list(self.tied_interval),
            "tied_logit_width": self.tied_logit_width,
            "accuracy_at_0.5": self.metrics_at_half.get("accuracy", math.nan),
            "metrics_at_0.5": dict(self.metrics_at_half),
            "by_rule": {rule: dict(values) for rule, values in self.by_rule.items()},
            "calibration_map": self.calibration_map,
            "ece": dict(self.ece), "brier": dict(self.brier),
        }


Calibration = ScoreCalibration | Sequence[ScoreCalibration] | None


def build_report(name: str, val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray,
                 test_labels: np.ndarray, class_names: tuple[str, ...], seed: int = 0, *,
                 threshold_rule: str | float | OperatingPoint = DEFAULT_THRESHOLD_RULE,
                 calibration: Calibration = None, raw_test_scores: np.ndarray | None = None,
                 anchor: float | None = None) -> TestReport:
    """Threshold from the held-out scores (by ``threshold_rule``), then metrics and intervals on test.

    Binary: positive = last class. ``val_scores`` and ``test_scores`` are the scores decisions are
    taken on: calibrated ones when ``calibration`` (the map, or an ensemble's members' maps) is
    given, with the uncalibrated test scores in ``raw_test_scores``; without either the scores are
    taken as they are (an identity map). The metrics at 0.5 are on the uncalibrated scores, so the
    report always shows what the chosen operating point gained or lost against the untuned default.
    ``anchor`` is the model's own balanced point on the scale of ``val_scores`` (``balanced-1se``).
    """
    test_scores = np.asarray(test_scores)
    test_labels = np.asarray(test_labels)
    raw = test_scores if raw_test_scores is None else np.asarray(raw_test_scores)
    choice = choose_threshold(val_scores, val_labels, threshold_rule, anchor)
    threshold = choice.value
    return TestReport(
        name=name,
        threshold=threshold,
        metrics=point_metrics(test_scores, test_labels, threshold),
        intervals=bootstrap_intervals(test_scores, test_labels, threshold, seed=seed),
        confusion=confusion(test_scores, test_labels, threshold),
        n_test=int(len(test_labels)),
        class_names=tuple(class_names),
        threshold_rule=choice.rule,
        tied_interval=(choice.tied_low, choice.tied_high),
        tied_logit_width=choice.logit_width,
        metrics_at_half=point_metrics(raw, test_labels, 0.5),
        by_rule=metrics_by_rule(val_scores, val_labels, test_scores, test_labels, threshold_rule, anchor),
        raw_threshold=_raw_threshold(calibration, threshold),
        calibration_map=_map_dict(calibration),
        ece={"before": expected_calibration_error(raw, test_labels),
             "after": expected_calibration_error(test_scores, test_labels)},
        brier={"before": _brier(raw, test_labels), "after": _brier(test_scores, test_labels)},
        anchor=math.nan if anchor is None else float(anchor),
    )


def _raw_threshold(calibration: Calibration, threshold: float) -> float:
    """The threshold on the uncalibrated scale: one map's inverse; NaN for an ensemble's several."""
    if calibration is None:
        return float(threshold)
    if isinstance(calibration, ScoreCalibration):
        return calibration.raw_threshold(threshold)
    return math.nan


def _map_dict(calibration: Calibration) -> Any:
    if calibration is None:
        return ScoreCalibration.identity("scores given as they are").to_dict()
    if isinstance(calibration, ScoreCalibration):
        return calibration.to_dict()
    return [c.to_dict() for c in calibration]


def _brier(scores: np.ndarray, labels: np.ndarray) -> float:
    positive = (np.asarray(labels) == 1).astype(np.float64)
    return float(np.mean((np.asarray(scores, dtype=np.float64) - positive) ** 2)) if len(positive) else math.nan


def metrics_by_rule(val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray, test_labels: np.ndarray,
                    chosen: str | float | OperatingPoint | None = None,
                    anchor: float | None = None) -> dict[str, dict[str, float]]:
    """``REPORTED_RULES`` (and ``chosen`` when it is not among them) on the same held-out scores:
    each rule's threshold and its test accuracy, balanced accuracy, sensitivity and specificity."""
    rules = list(REPORTED_RULES)
    if chosen is not None and (label := parse_operating_point(chosen).label) not in rules:
        rules.append(label)
    out = {}
    for rule in rules:
        value = choose_threshold(val_scores, val_labels, rule, anchor).value
        metrics = point_metrics(test_scores, test_labels, value)
        out[rule] = {"threshold": value, **{k: metrics[k] for k in BY_RULE_COLUMNS[1:]}}
    return out


def _score_text(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3f}" if 0.001 <= x <= 0.999 else f"{x:.6g}"


def _tie_text(r: TestReport) -> str:
    low, high = r.tied_interval
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"({_score_text(low)}, {_score_text(high)}] ({r.tied_logit_width:.2f})"


def _before_after(values: dict[str, float]) -> str:
    if not values:
        return "n/a"
    return f"{values.get('before', math.nan):.4f} -> {values.get('after', math.nan):.4f}"


def describe_calibration(calibration_map: Any) -> str:
    """One phrase naming a report's calibration map (an ensemble's: each member's)."""
    if calibration_map is None:
        return "none recorded"
    if isinstance(calibration_map, dict):
        return ScoreCalibration.from_dict(calibration_map).describe()
    maps = [ScoreCalibration.from_dict(m).describe() for m in calibration_map]
    return "the members' calibrated probabilities averaged; " + "; ".join(
        f"member {i}: {text}" for i, text in enumerate(maps))


def _by_rule_lines(r: TestReport) -> list[str]:
    if not r.by_rule:
        return []
    lines = [f"**{r.name}**: every reported rule on the same held-out scores (read, not used to choose)", "",
             "| rule | " + " | ".join(BY_RULE_COLUMNS) + " |", "| --- " * (len(BY_RULE_COLUMNS) + 1) + "|"]
    for rule, values in r.by_rule.items():
        lines.append(f"| {rule} | " + " | ".join(f"{values.get(c, math.nan):.3f}" for c in BY_RULE_COLUMNS) + " |")
    return lines + [""]


def report_markdown(reports: list[TestReport], title: str) -> str:
    """Side-by-side table of reports (single model, ensemble), readable in MLflow's artifact view."""
    phrases = [describe_threshold_rule(r.threshold_rule, r.threshold) for r in reports]
    if len(set(phrases)) <= 1:
        how = phrases[0] if phrases else describe_threshold_rule(DEFAULT_THRESHOLD_RULE)
    else:
        how = "; ".join(f"{r.name}: {p}" for r, p in zip(reports, phrases))
    lines = [f"# {title}", "", f"Held-out test split, evaluated once. Decision threshold: {how}. "
             "Scores are calibrated on the held-out images before the threshold is chosen; accuracy at 0.5 is on "
             "the uncalibrated scores (the untuned default). 95% percentile bootstrap intervals over test images. "
             "The tied interval holds every threshold that reaches the same best Youden's J on validation (its "
             "width in logit units).", ""]
    lines.append("| metric | " + " | ".join(r.name for r in reports) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in reports) + " |")
    for m in METRICS:
        if not all(m in r.metrics and m in r.intervals for r in reports):  # reports built before the metric was
            continue
        cells = [f"{r.metrics[m]:.3f} ({r.intervals[m][0]:.3f}-{r.intervals[m][1]:.3f})" for r in reports]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("| threshold | " + " | ".join(f"{r.threshold:.3f}" for r in reports) + " |")
    lines.append("| threshold on the uncalibrated score | " + " | ".join(
        _score_text(r.raw_threshold) if math.isfinite(r.raw_threshold) else "n/a (one map per member)"
        for r in reports) + " |")
    lines.append("| threshold rule | " + " | ".join(r.threshold_rule for r in reports) + " |")
    lines.append("| tied interval (logit width) | " + " | ".join(_tie_text(r) for r in reports) + " |")
    lines.append("| accuracy at 0.5 | " + " | ".join(
        f"{r.metrics_at_half['accuracy']:.3f}" if "accuracy" in r.metrics_at_half else "n/a" for r in reports) + " |")
    lines.append("| ECE on test, before -> after calibration | " + " | ".join(
        _before_after(r.ece) for r in reports) + " |")
    lines.append("| Brier on test, before -> after calibration | " + " | ".join(
        _before_after(r.brier) for r in reports) + " |")
    lines.append("")
    lines.append(f"Positive class: **{reports[0].class_names[-1]}** (sensitivity, specificity, precision, the "
                 f"threshold and the ROC are about it; the other class: {reports[0].class_names[0]}).")
    lines.append("")
    for r in reports:
        lines += [f"**{r.name}**: calibration map: {describe_calibration(r.calibration_map)}.", ""]
    for r in reports:
        neg, pos = r.class_names[0], r.class_names[-1]
        c = r.confusion
        lines += [f"**{r.name}**: confusion matrix (rows: true, columns: predicted), n = {r.n_test}", "",
                  f"| | {neg} | {pos} |", "| --- | --- | --- |",
                  f"| {neg} | {c['tn']} | {c['fp']} |", f"| {pos} | {c['fn']} | {c['tp']} |", ""]
        lines += _by_rule_lines(r)
    return "\n".join(lines)
