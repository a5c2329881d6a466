"""Operating points: where a final model's decision threshold goes (two classes), or how its most
probable class is read (more classes).

A two-class rule is chosen on the held-out scores *after* they are calibrated
(``medtune.trainables.calibration``) and returns a threshold on the calibrated scale; ``score >=
threshold`` is positive. The rules answer different questions, so the report shows them all
(``REPORTED_RULES``) and the user picks one with ``medtune final --operating-point``:

* ``balanced`` (alias ``calibrated``, its old name): the held-out positive share pi. On calibrated
  probabilities this is the Bayes rule for balanced accuracy: predict positive when the posterior
  odds exceed the prior odds. It is what a class-weighted loss aims at, and it does not care where
  the raw scores sit: on the breast-ultrasound set whose scores had collapsed toward 0, raw 0.5
  missed half the malignant cases while the balanced cut-off was at 0.008;
* ``prior``: 0.5 on the calibrated scale, the Bayes rule for accuracy at the held-out prevalence;
* ``youden-mid`` and ``youden``: rank-based (a monotone calibration leaves their decisions as they
  were on the raw scores). ``youden`` is scikit-learn's best-J point, an end of any tie;
  ``youden-mid`` the middle, in logit space, of the widest run of thresholds that tie for the best J:
  when held-out scores separate the classes every threshold in the gap ties, and an end of the gap
  (real runs: 0.045-0.051, or 0.960 on a small val set) lost 5-7 points of test accuracy to a
  slightly shifted test split;
* ``sensitivity:T`` / ``specificity:T`` (T in (0, 1]): the highest threshold whose held-out
  sensitivity is >= T (the lowest whose specificity is >= T), placed like ``youden-mid`` at the
  logit-space middle of the thresholds that give that same held-out confusion, so the screening
  target is met on held-out data with as much room as it leaves;
* ``cost:FN/FP=R`` (R > 0): a missed positive costs R false alarms; the Bayes threshold on
  calibrated probabilities is 1 / (1 + R);
* a number in [0, 1]: that threshold on the calibrated scale (rule ``fixed``).

``auto`` is ``DEFAULT_OPERATING_POINT``, one constant, so the benchmark that decides it
(``benchmarks/operating_points.py``) changes one line. Held-out labels with a single class keep
the old behaviour: 0.5 for every rule that needs both classes (rule ``single-class``).

With more than two classes there is no threshold; the predicted class is the argmax of the
log-probabilities plus a per-class offset: ``balanced`` aims at balanced accuracy, ``prior`` at
accuracy at the training prevalence. A class-weighted model (inverse-frequency weights, the default)
already aims at balanced priors, so its ``balanced`` is the plain argmax and its ``prior`` adds the
log of the training class shares (undoing the weighting); an unweighted model's ``prior`` is the
plain argmax and its ``balanced`` subtracts them.

Pure numpy/sklearn, so every threshold can be recomputed from the saved predictions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

#: What ``auto`` resolves to for a two-class task. One constant: the benchmark decides it.
DEFAULT_OPERATING_POINT = "balanced-1se"
#: What ``auto`` resolves to with more than two classes.
DEFAULT_MULTICLASS_OPERATING_POINT = "balanced"
AUTO = "auto"

#: Two-class rules named without a parameter (``calibrated`` is accepted as ``balanced``).
THRESHOLD_RULES = ("balanced-1se", "balanced", "prior", "youden-mid", "youden")
#: Old names still accepted, and the rule each stands for.
ALIASES = {"calibrated": "balanced"}
#: ``choose_threshold``'s default argument, kept for its old callers; ``medtune final``'s ``auto`` is
#: ``DEFAULT_OPERATING_POINT``.
DEFAULT_THRESHOLD_RULE = "youden-mid"
#: Rule recorded when the held-out labels hold a single class and the rule needs both: 0.5.
SINGLE_CLASS_RULE = "single-class"
#: Rule recorded for a number given as the rule.
FIXED_RULE = "fixed"
#: The rules every two-class report shows side by side (``by_rule``), read, never used to choose.
REPORTED_RULES = ("balanced-1se", "youden-mid", "youden", "balanced", "prior", "sensitivity:0.90",
                  "specificity:0.90", "cost:FN/FP=5")
#: Operating points of a task with more than two classes.
MULTICLASS_RULES = ("balanced", "prior")
#: Two thresholds whose J differ by at most this much tie (J is a difference of two rates in [0, 1]).
J_TIE_TOLERANCE = 1e-12
#: Scores are clipped to [EPS, 1 - EPS] before a logit, so 0, 1 and unbounded ends stay finite.
LOGIT_EPS = 1e-6

ACCEPTED = ("auto, balanced-1se, balanced (alias calibrated), prior, youden-mid, youden, "
            "sensitivity:T or specificity:T "
            "(T in (0, 1], e.g. sensitivity:0.90), cost:FN/FP=R (R > 0, e.g. cost:FN/FP=5), "
            "or a threshold in [0, 1] such as 0.5")

_TARGET = re.compile(r"^(sensitivity|specificity)\s*:\s*(\S+)$")
_COST = re.compile(r"^cost\s*:\s*fn\s*/\s*fp\s*=\s*(\S+)$")


@dataclass(frozen=True)
class OperatingPoint:
    """A parsed two-class rule: ``kind`` (balanced, prior, youden-mid, youden, sensitivity,
    specificity, cost, fixed) and its number (the target rate, the FN/FP cost ratio, the threshold)."""

    kind: str
    value: float | None = None

    @property
    def label(self) -> str:
        """The canonical text: ``sensitivity:0.90``, ``cost:FN/FP=5``, ``0.5``, ``balanced``."""
        if self.kind in ("sensitivity", "specificity"):
            return f"{self.kind}:{_target_text(self.value)}"
        if self.kind == "cost":
            return f"cost:FN/FP={self.value:g}"
        if self.kind == FIXED_RULE:
            return f"{self.value:g}"
        return self.kind

    @property
    def rule(self) -> str:
        """What a ``ThresholdChoice`` records: the label, or ``fixed`` for a number."""
        return FIXED_RULE if self.kind == FIXED_RULE else self.label

    @property
    def needs_both_classes(self) -> bool:
        """Rules read off held-out labels; ``prior``, ``cost`` and a number need none."""
        return self.kind not in ("prior", "cost", FIXED_RULE)


def _target_text(value: float | None) -> str:
    text = f"{value:.2f}"
    return text if float(text) == value else repr(float(value))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_operating_point(rule: "str | float | OperatingPoint") -> OperatingPoint:
    """The two-class rule ``rule`` names (``auto`` is ``DEFAULT_OPERATING_POINT``); a ValueError
    that names the text and the accepted forms when it is none."""
    if isinstance(rule, OperatingPoint):
        return rule
    if isinstance(rule, (int, float, np.floating, np.integer)) and not isinstance(rule, bool):
        value = float(rule)
        if math.isfinite(value) and 0.0 <= value <= 1.0:
            return OperatingPoint(FIXED_RULE, value)
        raise ValueError(f"{rule!r}: a threshold must be a number in [0, 1]; expected {ACCEPTED}")
    text = str(rule).strip().lower()
    if text == AUTO:
        return parse_operating_point(DEFAULT_OPERATING_POINT)
    text = ALIASES.get(text, text)
    if text in THRESHOLD_RULES:
        return OperatingPoint(text)
    if (number := _number(text)) is not None:
        if 0.0 <= number <= 1.0:
            return OperatingPoint(FIXED_RULE, number)
        raise ValueError(f"unknown threshold rule {rule!r}: a threshold must be in [0, 1]; expected {ACCEPTED}")
    if match := _TARGET.match(text):
        target = _number(match.group(2))
        if target is None or not 0.0 < target <= 1.0:
            raise ValueError(f"unknown threshold rule {rule!r}: the {match.group(1)} target must be a number in "
                             f"(0, 1], e.g. {match.group(1)}:0.90; expected {ACCEPTED}")
        return OperatingPoint(match.group(1), target)
    if text.startswith("cost"):
        match = _COST.match(text)
        ratio = _number(match.group(1)) if match else None
        if ratio is None or ratio <= 0:
            raise ValueError(f"unknown threshold rule {rule!r}: a cost rule reads cost:FN/FP=R with R a positive "
                             f"number (a missed positive costs R false alarms), e.g. cost:FN/FP=5; expected {ACCEPTED}")
        return OperatingPoint("cost", ratio)
    raise ValueError(f"unknown threshold rule {rule!r}: expected {ACCEPTED}")


def parse_multiclass_operating_point(rule: str) -> str:
    """``balanced`` or ``prior`` for a task with more than two classes (``auto`` is
    ``DEFAULT_MULTICLASS_OPERATING_POINT``); any two-class rule is a ValueError."""
    text = str(rule).strip().lower()
    if text == AUTO:
        return DEFAULT_MULTICLASS_OPERATING_POINT
    text = ALIASES.get(text, text)
    if text in MULTICLASS_RULES:
        return text
    raise ValueError(f"{rule!r}: a threshold applies to two-class tasks; with more than two classes the operating "
                     f"point is auto, balanced or prior")


# --- two classes: thresholds ------------------------------------------------------------------------


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold that maximises sensitivity + specificity - 1 on (held-out) data.

    sklearn's argmax point: with tied thresholds it is an end of the tie (see ``choose_threshold``,
    whose ``"youden"`` rule returns exactly this). Kept as it was for comparison and old callers.
    """
    from sklearn.metrics import roc_curve  # here: the CLI imports this module to print its --help

    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold (``score >= value`` is positive) and how much room the data left for it.

    ``tied_low`` < t <= ``tied_high`` is the (widest) run of thresholds t that reach the best
    Youden's J on the data it was chosen on, whatever the rule; ±inf when the tie reaches past every
    score (only when the best J is 0, i.e. no threshold separates anything). ``logit_width`` is that
    interval's width in logit space (ends clipped to [1e-6, 1 - 1e-6]): large means the held-out data
    left a wide gap between the classes, so where in the gap the threshold sits is a choice the data
    did not make. All but ``value`` and ``rule`` are NaN when the labels hold a single class.
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


def _counts_by_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique, tp, fp): for distinct sorted scores u_0 < ... < u_{m-1}, every t in (u_{k-1}, u_k]
    predicts the same set (score >= u_k), with u_{-1} = -inf; t > u_{m-1} predicts nothing positive.
    ``tp[k]``, ``fp[k]`` count that set's positives and negatives for k = 0..m (k = m: none)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    positive = (labels[order] == 1).astype(np.int64)
    unique, first = np.unique(sorted_scores, return_index=True)
    pos_per_value = np.add.reduceat(positive, first)
    neg_per_value = np.add.reduceat(1 - positive, first)
    tp = np.append(np.cumsum(pos_per_value[::-1])[::-1], 0)
    fp = np.append(np.cumsum(neg_per_value[::-1])[::-1], 0)
    return unique, tp, fp


def _interval(unique: np.ndarray, k_lo: int, k_hi: int) -> tuple[float, float]:
    """The thresholds (low, high] of the classes k_lo..k_hi (see ``_counts_by_threshold``)."""
    return (float(unique[k_lo - 1]) if k_lo > 0 else -math.inf,
            float(unique[k_hi]) if k_hi < len(unique) else math.inf)


def _tied_interval(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(tied_low, tied_high, best_j): the widest run of thresholds that reach the best Youden's J.

    J is computed for each of the m + 1 threshold classes of ``_counts_by_threshold``; the tied ones
    (within ``J_TIE_TOLERANCE`` of the best) form runs of consecutive k, and a run k_a..k_b is the
    interval (u_{k_a - 1}, u_{k_b}]. Of several separate runs the widest in logit space is kept: its
    middle is a best-J threshold with the most room on both sides, where the middle of the runs'
    hull could fall in a gap whose J is lower.
    """
    unique, tp, fp = _counts_by_threshold(scores, labels)
    n_pos, n_neg = int(tp[0]), int(fp[0])
    # J = tp/P - fp/N over a common denominator: equal confusion trade-offs give bit-equal J.
    j = (tp * n_neg - fp * n_pos) / float(n_pos * n_neg)
    best_j = float(j.max())
    if best_j <= J_TIE_TOLERANCE:  # no threshold beats calling everything one class: no tie to place within
        return -math.inf, math.inf, best_j
    tied = np.flatnonzero(j >= best_j - J_TIE_TOLERANCE)
    runs = np.split(tied, np.flatnonzero(np.diff(tied) > 1) + 1)
    low, high = max((_interval(unique, int(run[0]), int(run[-1])) for run in runs),
                    key=lambda b: _logit(b[1]) - _logit(b[0]))
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


def _target_threshold(scores: np.ndarray, labels: np.ndarray, kind: str, target: float) -> float:
    """``sensitivity``: the highest threshold class whose held-out sensitivity is >= ``target``;
    ``specificity``: the lowest whose specificity is >= ``target``; its logit-space middle."""
    unique, tp, fp = _counts_by_threshold(scores, labels)
    n_pos, n_neg = int(tp[0]), int(fp[0])
    if kind == "sensitivity":  # tp falls as k rises; k = 0 (everything positive) always qualifies
        k = int(np.flatnonzero(tp >= target * n_pos - 1e-9).max())
    else:  # true negatives n_neg - fp rise with k; k = m (nothing positive) always qualifies
        k = int(np.flatnonzero(n_neg - fp >= target * n_neg - 1e-9).min())
    low, high = _interval(unique, k, k)
    return _logit_midpoint(low, high, scores)


def _smoothed_rate(hits: np.ndarray, n: int) -> np.ndarray:
    """(hits + 1) / (n + 2): a rate that is never exactly 0 or 1, so its standard error never is 0."""
    return (hits + 1.0) / (n + 2.0)


def _one_se_threshold(scores: np.ndarray, labels: np.ndarray, anchor: float) -> float:
    """The threshold nearest ``anchor`` (in logit space) whose held-out balanced accuracy is within one
    standard error of the best; ``anchor`` itself when it is such a threshold.

    The standard error is that of the best point's balanced accuracy, from its two rates
    (binomial, each smoothed by one success and one failure so that a held-out set the model
    separates still leaves room). Thresholds inside that band are ones the held-out images cannot
    tell apart; among them the one the model was trained toward wins.
    """
    unique, tp, fp = _counts_by_threshold(scores, labels)
    n_pos, n_neg = int(tp[0]), int(fp[0])
    balanced_accuracy = (tp / n_pos + 1.0 - fp / n_neg) / 2.0
    best = int(np.argmax(balanced_accuracy))
    sens, spec = _smoothed_rate(tp[best], n_pos), _smoothed_rate(n_neg - fp[best], n_neg)
    se = 0.5 * math.sqrt(sens * (1 - sens) / n_pos + spec * (1 - spec) / n_neg)
    anchor = _in_scores_dtype(anchor, scores)
    dtype = scores.dtype.type if np.issubdtype(scores.dtype, np.floating) else np.float64
    nearest, distance = math.nan, math.inf
    for k in np.flatnonzero(balanced_accuracy >= balanced_accuracy[best] - se - 1e-12):
        low, high = _interval(unique, int(k), int(k))
        if low < anchor <= high:
            return anchor
        candidate = high if anchor > high else float(np.nextafter(dtype(low), dtype(np.inf)))
        gap = abs(_logit(candidate) - _logit(anchor))
        if gap < distance:
            nearest, distance = candidate, gap
    return nearest


def model_anchor(class_weighted: bool, train_positive_share: float) -> float:
    """Where a model's own (uncalibrated) scores balance the classes: 0.5 when it was trained with
    inverse-frequency class weights (the loss counts both classes alike), else the training share of
    positives (its 0.5 is the accuracy point at that prevalence)."""
    return 0.5 if class_weighted else float(min(max(train_positive_share, LOGIT_EPS), 1 - LOGIT_EPS))


def choose_threshold(scores: np.ndarray, labels: np.ndarray,
                     rule: "str | float | OperatingPoint" = DEFAULT_THRESHOLD_RULE,
                     anchor: float | None = None) -> ThresholdChoice:
    """Pick a decision threshold on held-out ``scores`` (calibrated, for every rule that reads them
    as probabilities) by ``rule`` (see the module docstring; ``auto`` is
    ``DEFAULT_OPERATING_POINT``); ``score >= value`` is positive.

    ``anchor`` is where ``balanced-1se`` starts from: the model's own balanced point on the same
    (calibrated) scale (``model_anchor``); 0.5 when not given.

    Held-out labels with a single class give 0.5, rule ``"single-class"``, for the rules that read
    labels; ``prior``, ``cost`` and a number need none and keep their value.
    """
    point = parse_operating_point(rule)
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D and of one length, got {scores.shape} and {labels.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    n_pos = int((labels == 1).sum())
    if len(np.unique(labels)) < 2 or n_pos == 0 or n_pos == len(labels):
        nan = math.nan
        if point.needs_both_classes:
            return ThresholdChoice(0.5, SINGLE_CLASS_RULE, nan, nan, nan, nan)
        return ThresholdChoice(_data_free_threshold(point, scores), point.rule, nan, nan, nan, nan)
    low, high, best_j = _tied_interval(scores, labels)
    width = _logit(high) - _logit(low)
    if not point.needs_both_classes:
        value = _data_free_threshold(point, scores)
    elif point.kind == "youden":
        value = youden_threshold(scores, labels)
    elif point.kind == "youden-mid":
        value = _logit_midpoint(low, high, scores)
    elif point.kind == "balanced":
        value = _in_scores_dtype(n_pos / len(labels), scores)
    elif point.kind == "balanced-1se":
        value = _one_se_threshold(scores, labels, 0.5 if anchor is None else anchor)
    else:
        value = _target_threshold(scores, labels, point.kind, float(point.value))
    return ThresholdChoice(value, point.rule, low, high, width, best_j)


def _data_free_threshold(point: OperatingPoint, scores: np.ndarray) -> float:
    if point.kind == FIXED_RULE:
        return float(point.value)
    if point.kind == "prior":
        return 0.5
    return _in_scores_dtype(1.0 / (1.0 + float(point.value)), scores)  # cost


_RULE_DESCRIPTIONS = {
    "youden-mid": "midpoint, in logit space, of the thresholds that tie for the best Youden's J on validation data",
    "youden": "the best Youden's J point sklearn's roc_curve returns on validation data (one end of any tie)",
    "balanced": "the held-out share of positives on the calibrated scale (Bayes rule for balanced accuracy: "
                "positive when the posterior odds exceed the prior odds)",
    "prior": "0.5 on the calibrated scale (Bayes rule for accuracy at the held-out prevalence)",
    "balanced-1se": "the threshold nearest the model's own balanced point (0.5 for a class-weighted model) among "
                    "those whose held-out balanced accuracy is within one standard error of the best",
    SINGLE_CLASS_RULE: "0.5, because the validation labels hold a single class (Youden's J is undefined)",
    FIXED_RULE: "a fixed value, not chosen on data",
}


def describe_threshold_rule(rule: str, threshold: float | None = None) -> str:
    """One phrase saying how a report's threshold was chosen, for the report's text."""
    if rule == FIXED_RULE and threshold is not None:
        return f"fixed at {threshold:g}, not chosen on data"
    if rule in _RULE_DESCRIPTIONS:
        return _RULE_DESCRIPTIONS[rule]
    if rule in ALIASES:
        return _RULE_DESCRIPTIONS[ALIASES[rule]]
    try:
        point = parse_operating_point(rule)
    except ValueError:
        return f"rule {rule!r}"
    if point.kind in ("sensitivity", "specificity"):
        side = "highest" if point.kind == "sensitivity" else "lowest"
        return (f"the {side} threshold whose held-out {point.kind} is at least {_target_text(point.value)} "
                "(middle, in logit space, of the thresholds that give that held-out confusion)")
    if point.kind == "cost":
        return (f"Bayes threshold 1 / (1 + {point.value:g}) = {1 / (1 + point.value):.3g} on the calibrated scale: "
                f"a missed positive costs {point.value:g} false alarms")
    return _RULE_DESCRIPTIONS.get(point.kind, f"rule {rule!r}")


# --- more than two classes: which class is predicted -----------------------------------------------


_MULTICLASS_DESCRIPTIONS = {
    "balanced": "the most probable class with the classes weighted equally (aims at balanced accuracy)",
    "prior": "the most probable class at the training class shares (aims at accuracy)",
}


def describe_multiclass_rule(rule: str) -> str:
    return _MULTICLASS_DESCRIPTIONS.get(rule, f"rule {rule!r}")


def class_priors(labels: np.ndarray, classes: int) -> np.ndarray:
    """Each class's share of the training labels, counting an absent class once (as the
    inverse-frequency class weights of ``medtune.trainables.train`` do), so no log is infinite."""
    counts = np.maximum(np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes), 1).astype(np.float64)
    return counts / counts.sum()


def multiclass_log_offsets(rule: str, priors: np.ndarray | None, class_weighted: bool) -> np.ndarray | None:
    """What to add to the log-probabilities before the argmax; None when the plain argmax is the rule.

    A class-weighted model's probabilities aim at balanced classes (``balanced`` is its argmax),
    and adding log(priors) undoes the weighting (``prior``); an unweighted model is the other way round.
    """
    rule = parse_multiclass_operating_point(rule)
    if priors is None or (rule == "balanced") == bool(class_weighted):
        return None
    offsets = np.log(np.asarray(priors, dtype=np.float64))
    return offsets if rule == "prior" else -offsets


def predict_classes(probs: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """The predicted class of each row: argmax of the probabilities, or of log-probabilities + ``offsets``."""
    probs = np.asarray(probs)
    if offsets is None:
        return probs.argmax(axis=1)
    return (np.log(np.clip(probs.astype(np.float64), 1e-300, None)) + offsets).argmax(axis=1)
