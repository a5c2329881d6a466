"""The final model's test report on a two-class task: a threshold chosen on validation data, metrics with 95% CIs.

Clinicians read sensitivity and specificity at one operating point, not an AUC at 0.5. The
threshold is chosen on validation predictions and only then applied to the test predictions,
which are looked at once. Every metric carries a 95% percentile bootstrap interval (test images
resampled with replacement, seeded), so two models' reports can be compared honestly. Pure
numpy/sklearn: the numbers can be recomputed from the saved predictions alone.

Why the default threshold rule is ``youden-mid`` and not plain Youden's J: when validation
separates the classes (almost) perfectly, every threshold in the gap between the classes reaches
the same best J, and sklearn's ``argmax`` returns one *end* of that gap (a score of one of the
validation images). On real runs that put the threshold at 0.045-0.051 (negatives < 0.04,
positives > 0.9) or at 0.960 on a small val set, and a test split whose negatives score a little
higher then lost 5-7 points of accuracy against threshold 0.5. ``youden-mid`` takes the middle, in
logit space, of the thresholds that tie for the best J: it classifies validation exactly as the
best-J point does whenever the tie is one interval, but sits as far as possible from both classes'
validation scores. The report also gives the tied interval (how much room there was) and the
accuracy at 0.5, so a reader can see how much the choice mattered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from medtune.trainables.progress import progress

BOOTSTRAP_SAMPLES = 1000
CI_LEVEL = 0.95
METRICS = ("accuracy", "roc_auc", "sensitivity", "specificity", "precision", "f1")

#: Threshold rules ``choose_threshold`` accepts by name (a number, e.g. ``"0.5"``, is a fixed threshold).
THRESHOLD_RULES = ("youden-mid", "youden", "calibrated")
DEFAULT_THRESHOLD_RULE = "youden-mid"
#: Rule recorded when validation labels hold a single class: Youden's J is undefined, the threshold is 0.5.
SINGLE_CLASS_RULE = "single-class"
#: Rule recorded for a number given as the rule.
FIXED_RULE = "fixed"
#: Two thresholds whose J differ by at most this much tie (J is a difference of two rates in [0, 1]).
J_TIE_TOLERANCE = 1e-12
#: Scores are clipped to [EPS, 1 - EPS] before a logit, so 0, 1 and unbounded ends stay finite.
LOGIT_EPS = 1e-6

_RULE_DESCRIPTIONS = {
    "youden-mid": "midpoint, in logit space, of the thresholds that tie for the best Youden's J on validation data",
    "youden": "the best Youden's J point sklearn's roc_curve returns on validation data (one end of any tie)",
    "calibrated": "0.5 on a class-balanced logistic (Platt) calibration of the validation scores",
    SINGLE_CLASS_RULE: "0.5, because the validation labels hold a single class (Youden's J is undefined)",
    FIXED_RULE: "a fixed value, not chosen on data",
}


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold that maximises sensitivity + specificity - 1 on (validation) data.

    sklearn's argmax point: with tied thresholds it is an end of the tie (see ``choose_threshold``,
    whose ``"youden"`` rule returns exactly this). Kept as it was for comparison and old callers.
    """
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold (``score >= value`` is positive) and how much room the data left for it.

    ``tied_low`` < t <= ``tied_high`` is the (widest) run of thresholds t that reach the best
    Youden's J on the data it was chosen on; ±inf when the tie reaches past every score (only when
    the best J is 0, i.e. no threshold separates anything). ``logit_width`` is that interval's width
    in logit space (ends clipped to [1e-6, 1 - 1e-6]): large means validation left a wide gap between
    the classes, so where in the gap the threshold sits is a choice the data did not make. All but
    ``value`` and ``rule`` are NaN when the labels hold a single class.
    """

    value: float
    rule: str
    tied_low: float
    tied_high: float
    logit_width: float
    best_j: float


def _logit(p: float) -> float:
    p = min(max(p, LOGIT_EPS), 1.0 - LOGIT_EPS)
    return math.log(p / (1.0 - p))


def _logit_array(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _in_scores_dtype(value: float, scores: np.ndarray) -> float:
    """``value`` rounded to the scores' float type, so comparisons agree in float32 and float64.

    NumPy compares a float32 array with a Python float in float32; a float64 threshold between two
    float32 scores could round onto one of them there and not when the saved predictions are re-read
    as float64. A threshold exactly representable in the scores' type classifies the same in both.
    """
    if np.issubdtype(scores.dtype, np.floating):
        return float(scores.dtype.type(value))
    return float(value)


def _tied_interval(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(tied_low, tied_high, best_j): the widest run of thresholds that reach the best Youden's J.

    For distinct sorted scores u_0 < ... < u_{m-1}, every t in (u_{k-1}, u_k] predicts the same
    set (score >= u_k), with u_{-1} = -inf; t > u_{m-1} predicts nothing positive (k = m, u_m = +inf).
    J is computed for each of these m + 1 classes; the tied ones (within ``J_TIE_TOLERANCE`` of the
    best) form runs of consecutive k, and a run k_a..k_b is the interval (u_{k_a - 1}, u_{k_b}]: its
    low end the score just below its lowest threshold, its high end its highest threshold (a score).
    Of several separate runs the widest in logit space is kept: its middle is a best-J threshold
    with the most room on both sides, where the middle of the runs' hull could fall in a gap whose
    J is lower.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    positive = (labels[order] == 1).astype(np.int64)
    unique, first = np.unique(sorted_scores, return_index=True)
    pos_per_value = np.add.reduceat(positive, first)
    neg_per_value = np.add.reduceat(1 - positive, first)
    n_pos, n_neg = int(positive.sum()), int(len(positive) - positive.sum())
    # tp[k], fp[k]: predicted positive = score >= unique[k]; index m = nothing predicted positive.
    tp = np.append(np.cumsum(pos_per_value[::-1])[::-1], 0)
    fp = np.append(np.cumsum(neg_per_value[::-1])[::-1], 0)
    # J = tp/P - fp/N over a common denominator: equal confusion trade-offs give bit-equal J.
    j = (tp * n_neg - fp * n_pos) / float(n_pos * n_neg)
    best_j = float(j.max())
    if best_j <= J_TIE_TOLERANCE:  # no threshold beats calling everything one class: no tie to place within
        return -math.inf, math.inf, best_j
    tied = np.flatnonzero(j >= best_j - J_TIE_TOLERANCE)
    runs = np.split(tied, np.flatnonzero(np.diff(tied) > 1) + 1)

    def bounds(run: np.ndarray) -> tuple[float, float]:
        k_lo, k_hi = int(run[0]), int(run[-1])
        return (float(unique[k_lo - 1]) if k_lo > 0 else -math.inf,
                float(unique[k_hi]) if k_hi < len(unique) else math.inf)

    low, high = max((bounds(run) for run in runs), key=lambda b: _logit(b[1]) - _logit(b[0]))
    return low, high, best_j


def _logit_midpoint(low: float, high: float, scores: np.ndarray) -> float:
    """The middle of (low, high] in logit space, kept inside (low, high] after rounding.

    Falls back to ``high`` (or just above ``low`` when ``high`` is +inf) when the clipped-logit
    midpoint is not strictly inside: ends beyond the [1e-6, 1 - 1e-6] clip, or an interval so
    narrow that rounding to the scores' float type lands on ``low``.
    """
    if math.isinf(low) and math.isinf(high):  # no threshold separates anything: the untuned default
        return 0.5
    value = _in_scores_dtype(_sigmoid((_logit(low) + _logit(high)) / 2.0), scores)
    if low < value <= high:
        return value
    if math.isfinite(high):
        return high
    dtype = scores.dtype.type if np.issubdtype(scores.dtype, np.floating) else np.float64
    return float(np.nextafter(dtype(low), dtype(np.inf)))


def _calibrated_threshold(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The score where a class-balanced logistic fit of the labels on logit(score) crosses 0.5.

    Under balanced class weights, a calibrated posterior maximises sensitivity + specificity at
    0.5, so this is Youden's point estimated from every validation score by a two-parameter fit
    rather than by the argmax of a step function that two images decide. scikit-learn's L2
    penalty keeps the fit finite when validation separates the classes. None when the fitted
    slope is not positive (scores that do not rank the classes).
    """
    from sklearn.linear_model import LogisticRegression

    x = _logit_array(scores).reshape(-1, 1)
    fit = LogisticRegression(class_weight="balanced").fit(x, labels)
    slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if slope <= 0:
        return None
    return _in_scores_dtype(_sigmoid(-intercept / slope), scores)


def _fixed_value(rule: str | float) -> float | None:
    """The number a rule names (``0.5`` or ``"0.5"``), or None when it is not a number."""
    if isinstance(rule, bool):
        return None
    if isinstance(rule, (int, float, np.floating, np.integer)):
        value = float(rule)
    else:
        try:
            value = float(str(rule).strip())
        except ValueError:
            return None
    return value if math.isfinite(value) else None


def choose_threshold(scores: np.ndarray, labels: np.ndarray, rule: str | float = DEFAULT_THRESHOLD_RULE) -> ThresholdChoice:
    """Pick a decision threshold on (validation) ``scores`` by ``rule``; ``score >= value`` is positive.

    Rules: ``"youden-mid"`` (default) the logit-space middle of the widest run of thresholds tying
    for the best Youden's J (see ``_tied_interval``): a best-J point on validation, but as far as
    possible from both classes' validation scores, so a test split shifted a little does not flip
    images that sat at the gap's edge. ``"youden"``: sklearn's argmax point, as
    ``youden_threshold``. A number (``0.5`` or ``"0.5"``): that threshold, rule ``"fixed"``.
    Validation labels with a single class give 0.5, rule ``"single-class"`` (for the Youden rules).
    """
    fixed = _fixed_value(rule)
    name = str(rule).strip().lower() if fixed is None else FIXED_RULE
    if fixed is None and name not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}: expected one of {', '.join(THRESHOLD_RULES)} "
                         "or a number such as 0.5")
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D and of one length, got {scores.shape} and {labels.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    n_pos = int((labels == 1).sum())
    if len(np.unique(labels)) < 2 or n_pos == 0 or n_pos == len(labels):
        nan = math.nan
        if fixed is not None:
            return ThresholdChoice(fixed, FIXED_RULE, nan, nan, nan, nan)
        return ThresholdChoice(0.5, SINGLE_CLASS_RULE, nan, nan, nan, nan)
    low, high, best_j = _tied_interval(scores, labels)
    width = _logit(high) - _logit(low)
    if fixed is not None:
        value = fixed
    elif name == "youden":
        value = youden_threshold(scores, labels)
    elif name == "calibrated":
        calibrated = _calibrated_threshold(scores, labels)
        value = calibrated if calibrated is not None else _logit_midpoint(low, high, scores)
    else:
        value = _logit_midpoint(low, high, scores)
    return ThresholdChoice(value, name, low, high, width, best_j)


def describe_threshold_rule(rule: str, threshold: float | None = None) -> str:
    """One phrase saying how a report's threshold was chosen, for the report's text."""
    if rule == FIXED_RULE and threshold is not None:
        return f"fixed at {threshold:g}, not chosen on data"
    return _RULE_DESCRIPTIONS.get(rule, f"rule {rule!r}")


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


def percentile_bootstrap(metrics: Callable[[np.ndarray], dict[str, float]], n: int, samples: int = BOOTSTRAP_SAMPLES,
                         seed: int = 0, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each metric ``metrics(idx)`` returns for ``n`` test images
    resampled with replacement (``idx``); draws where a metric is undefined (NaN) are left out."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in progress(range(samples), total=samples, desc="bootstrap CIs", unit="resample"):
        for name, value in metrics(rng.integers(0, n, n)).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    out = {}
    for name, values in draws.items():
        finite = np.array([v for v in values if not math.isnan(v)])
        out[name] = (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))) if len(finite) else (math.nan, math.nan)
    return out


def bootstrap_intervals(scores: np.ndarray, labels: np.ndarray, threshold: float, samples: int = BOOTSTRAP_SAMPLES,
                        seed: int = 0, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric at ``threshold``."""
    return percentile_bootstrap(lambda idx: point_metrics(scores[idx], labels[idx], threshold), len(labels),
                                samples, seed, level)


@dataclass
class TestReport:
    """What the final run reports about one model (or ensemble) on the held-out test split.

    Besides the metrics at the chosen threshold it keeps how that threshold was chosen
    (``threshold_rule``), the validation tie it was chosen in (``tied_interval``, its
    ``tied_logit_width``) and the metrics at 0.5 (``metrics_at_half``): a wide tie means the data did
    not pin the threshold down, and the accuracy at 0.5 shows what the choice was worth on test.
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
    #: Every other rule's threshold on the same validation scores and its test metrics: what the
    #: choice of rule was worth on this test split (read, never used to choose).
    by_rule: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "threshold": self.threshold, "n_test": self.n_test,
            "class_names": list(self.class_names), "confusion_matrix": self.confusion,
            "metrics": {m: {"value": self.metrics[m], "ci95": list(self.intervals[m])} for m in METRICS},
            "threshold_rule": self.threshold_rule,
            "tied_interval": list(self.tied_interval),
            "tied_logit_width": self.tied_logit_width,
            "accuracy_at_0.5": self.metrics_at_half.get("accuracy", math.nan),
            "metrics_at_0.5": dict(self.metrics_at_half),
            "by_rule": {rule: dict(values) for rule, values in self.by_rule.items()},
        }


def build_report(name: str, val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray,
                 test_labels: np.ndarray, class_names: tuple[str, ...], seed: int = 0, *,
                 threshold_rule: str | float = DEFAULT_THRESHOLD_RULE) -> TestReport:
    """Threshold from validation (by ``threshold_rule``), then metrics and intervals on test.

    Binary: positive = last class. The metrics at 0.5 come along so the report always shows what
    the validation-chosen threshold gained or lost against the untuned default.
    """
    choice = choose_threshold(val_scores, val_labels, threshold_rule)
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
        metrics_at_half=point_metrics(test_scores, test_labels, 0.5),
        by_rule=_metrics_by_rule(val_scores, val_labels, test_scores, test_labels),
    )


def _metrics_by_rule(val_scores: np.ndarray, val_labels: np.ndarray, test_scores: np.ndarray,
                     test_labels: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for rule in (*THRESHOLD_RULES, "0.5"):
        value = choose_threshold(val_scores, val_labels, rule).value
        out[rule] = {"threshold": value, **point_metrics(test_scores, test_labels, value)}
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


def report_markdown(reports: list[TestReport], title: str) -> str:
    """Side-by-side table of reports (single model, ensemble), readable in MLflow's artifact view."""
    phrases = [describe_threshold_rule(r.threshold_rule, r.threshold) for r in reports]
    if len(set(phrases)) <= 1:
        how = phrases[0] if phrases else describe_threshold_rule(DEFAULT_THRESHOLD_RULE)
    else:
        how = "; ".join(f"{r.name}: {p}" for r, p in zip(reports, phrases))
    lines = [f"# {title}", "", f"Held-out test split, evaluated once. Decision threshold: {how}. "
             "95% percentile bootstrap intervals over test images. The tied interval holds every threshold "
             "that reaches the same best Youden's J on validation (its width in logit units).", ""]
    lines.append("| metric | " + " | ".join(r.name for r in reports) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in reports) + " |")
    for m in METRICS:
        cells = [f"{r.metrics[m]:.3f} ({r.intervals[m][0]:.3f}-{r.intervals[m][1]:.3f})" for r in reports]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("| threshold | " + " | ".join(f"{r.threshold:.3f}" for r in reports) + " |")
    lines.append("| threshold rule | " + " | ".join(r.threshold_rule for r in reports) + " |")
    lines.append("| tied interval (logit width) | " + " | ".join(_tie_text(r) for r in reports) + " |")
    lines.append("| accuracy at 0.5 | " + " | ".join(
        f"{r.metrics_at_half['accuracy']:.3f}" if "accuracy" in r.metrics_at_half else "n/a" for r in reports) + " |")
    lines.append("| accuracy by threshold rule (threshold) | " + " | ".join(
        ", ".join(f"{rule} {v['accuracy']:.3f} ({v['threshold']:.3f})" for rule, v in r.by_rule.items()) or "n/a"
        for r in reports) + " |")
    lines.append("")
    lines.append(f"Positive class: **{reports[0].class_names[-1]}** (sensitivity, specificity, precision, the "
                 f"threshold and the ROC are about it; the other class: {reports[0].class_names[0]}).")
    lines.append("")
    for r in reports:
        neg, pos = r.class_names[0], r.class_names[-1]
        c = r.confusion
        lines += [f"**{r.name}**: confusion matrix (rows: true, columns: predicted), n = {r.n_test}", "",
                  f"| | {neg} | {pos} |", "| --- | --- | --- |",
                  f"| {neg} | {c['tn']} | {c['fp']} |", f"| {pos} | {c['fn']} | {c['tp']} |", ""]
    return "\n".join(lines)
