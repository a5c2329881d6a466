"""Calibrating a two-class model's scores on held-out images before a threshold is chosen on them.

Why calibrate at all: a threshold rule that reads probabilities (0.5, the held-out prevalence, a
cost ratio) is only as good as the probabilities. On a held-back breast-ultrasound set the final
model's scores had collapsed toward 0 (class-weighted training, few images): the balanced cut-off
sat at 0.008, so 0.5 called half the malignant cases benign. The ranking (AUC) was fine; the scale
was not. So ``medtune final`` fits a map from the raw score to a calibrated probability on the same
held-out scores that choose the threshold, and every decision is taken on the calibrated scale.

Why Platt scaling, p_cal = sigmoid(slope * logit(p) + intercept), fitted by maximum likelihood:

* temperature scaling (the slope alone) cannot move the point where p = 0.5: logit 0 stays logit 0.
  The breast failure was exactly a shifted intercept, so the intercept must be free;
* isotonic regression is a step function with as many steps as the data allow: on a few hundred
  held-out images it overfits, and its flat steps tie scores that the model ranked, which changes
  the ranking (the AUC) and the ROC curve the report shows;
* Platt has two parameters and is strictly increasing when the slope is positive, so it keeps the
  model's ranking (AUC, ROC curve, Youden's rules) and only moves the scale.

The fit uses Platt's (1999) smoothed targets, y+ = (N+ + 1) / (N+ + 2) and y- = 1 / (N- + 2),
instead of 1 and 0: when held-out scores separate the classes the plain maximum-likelihood slope
runs off to infinity; with smoothed targets the optimum is finite and the map stays usable. A
fitted slope <= 0 means the held-out scores do not rank the classes; then the identity map is kept
(and says why), since inverting the model's ranking on a few images would be worse than nothing.

Pure numpy/scipy, so the numbers can be recomputed from saved predictions, and the map is a few
JSON numbers (``to_dict``) that travel with the logged model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The fit clips scores to [FIT_EPS, 1 - FIT_EPS] before the logit, so a float32 softmax that
#: saturated at exactly 0 or 1 gives a finite input and a handful of such images cannot pull the slope.
FIT_EPS = 1e-6
#: ``apply`` clips only exact 0 and 1 (to the nearest finite logit), so the map stays strictly
#: increasing over every score a model can output and the ranking (AUC) is kept.
_APPLY_LOW = float(np.finfo(np.float64).tiny)
_APPLY_HIGH = float(1.0 - np.finfo(np.float64).epsneg)

PLATT = "platt"
IDENTITY = "identity"


def _logit(p: np.ndarray, eps_low: float, eps_high: float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps_low, eps_high)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Without overflow for large |z| (``exp`` only ever sees a non-positive argument)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class ScoreCalibration:
    """A map from a two-class model's raw positive-class probability to a calibrated one.

    ``method`` is ``"platt"`` (p_cal = sigmoid(``slope`` * logit(p) + ``intercept``)) or
    ``"identity"`` (scores kept as they are; ``reason`` says why no fit was used). ``fitted_on`` is
    the number of held-out images the map was fitted on (0 for a map not fitted on data).
    """

    method: str
    slope: float
    intercept: float
    fitted_on: int
    reason: str = ""

    @classmethod
    def identity(cls, reason: str = "not fitted", fitted_on: int = 0) -> "ScoreCalibration":
        return cls(IDENTITY, 1.0, 0.0, int(fitted_on), reason)

    @property
    def is_identity(self) -> bool:
        return self.method == IDENTITY

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (float64) of ``scores``; strictly increasing in the score.

        (At the far ends float64 itself rounds: calibrated values above 1 - 1e-16 become 1.0.)
        """
        scores = np.asarray(scores, dtype=np.float64)
        if self.is_identity:
            return scores.copy()
        return _sigmoid(self.slope * _logit(scores, _APPLY_LOW, _APPLY_HIGH) + self.intercept)

    def raw_logit_threshold(self, threshold: float) -> float:
        """The raw logit (log p / (1 - p) of the uncalibrated score; for a softmax model the
        difference of its two outputs) at which the calibrated score reaches ``threshold``."""
        if threshold <= 0:
            return -math.inf
        if threshold >= 1:
            return math.inf
        z = math.log(threshold) - math.log1p(-threshold)
        return z if self.is_identity else (z - self.intercept) / self.slope

    def raw_threshold(self, threshold: float) -> float:
        """The uncalibrated score at which the calibrated score reaches ``threshold`` (the map's
        inverse): ``raw >= raw_threshold(t)`` decides as ``apply(raw) >= t`` does."""
        if self.is_identity or not 0 < threshold < 1:
            return float(threshold)
        return float(_sigmoid(np.float64(self.raw_logit_threshold(threshold))))

    def describe(self) -> str:
        """One phrase for the report: which map, its numbers, what it was fitted on."""
        if self.is_identity:
            return f"identity (scores used as they are: {self.reason})"
        return (f"Platt scaling, p = sigmoid({self.slope:.3g} * logit(score) {'+' if self.intercept >= 0 else '-'} "
                f"{abs(self.intercept):.3g}), fitted on {self.fitted_on} held-out images")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "slope": float(self.slope), "intercept": float(self.intercept),
                "fitted_on": int(self.fitted_on), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScoreCalibration":
        method = str(d.get("method", IDENTITY))
        if method not in (PLATT, IDENTITY):
            raise ValueError(f"unknown calibration method {method!r}: expected {PLATT!r} or {IDENTITY!r}")
        return cls(method, float(d.get("slope", 1.0)), float(d.get("intercept", 0.0)), int(d.get("fitted_on", 0)),
                   str(d.get("reason", "")))


def _smoothed_targets(labels: np.ndarray) -> np.ndarray:
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    return np.where(labels == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> ScoreCalibration:
    """Platt scaling of held-out ``scores`` (positive-class probabilities) against ``labels`` (0/1).

    Maximum likelihood of the smoothed targets over (slope, intercept) with scipy's BFGS and the
    analytic gradient (the negative log-likelihood is convex, so the start does not matter).
    Labels with a single class, or a fitted slope <= 0, give the identity map with the reason.
    """
    from scipy.optimize import minimize

    scores = np.asarray(scores, dtype=np.float64)
    labels = (np.asarray(labels) == 1).astype(np.float64)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D and of one length, got {scores.shape} and {labels.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    n = len(labels)
    if n == 0 or labels.min() == labels.max():
        return ScoreCalibration.identity("the held-out labels hold a single class", n)
    x = _logit(scores, FIT_EPS, 1.0 - FIT_EPS)
    t = _smoothed_targets(labels)

    def nll(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * x + params[1]
        # t * log(1 + e^-z) + (1 - t) * log(1 + e^z), without overflow
        loss = float(np.sum(t * np.logaddexp(0.0, -z) + (1.0 - t) * np.logaddexp(0.0, z)))
        residual = _sigmoid(z) - t
        return loss, np.array([float(residual @ x), float(residual.sum())])

    result = minimize(nll, np.array([1.0, 0.0]), jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 1000})
    slope, intercept = (float(v) for v in result.x)
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        return ScoreCalibration.identity("the fit did not converge to finite values", n)
    if slope <= 0:
        return ScoreCalibration.identity(f"the held-out scores do not rank the classes (fitted slope {slope:.3g} <= 0)",
                                         n)
    return ScoreCalibration(PLATT, slope, intercept, n)


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: over equal-width score bins, |mean score - share of positives|, weighted by the bin's count.

    Bins as the reliability diagram's (``medtune.search.results.calibration``): a score on an inner
    edge goes to the bin above, 1.0 to the last bin. NaN for no scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = (np.asarray(labels) == 1).astype(np.float64)
    if len(scores) == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], scores, side="right")
    score_sums = np.bincount(which, weights=scores, minlength=bins)
    positive_sums = np.bincount(which, weights=positive, minlength=bins)
    return float(np.abs(score_sums - positive_sums).sum() / len(scores))
