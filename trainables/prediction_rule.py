"""How a model's probabilities become a decision at prediction time: its stored operating point, or another one.

``medtune final`` chose the operating point on held-out images and stored it with the model
(``model_bundle``). At prediction time the same decision is taken the same way: two classes, the
positive-class probability goes through the stored Platt map (``calibration``) and is compared with
the stored threshold (``score >= threshold`` is positive); more classes, the argmax of the
log-probabilities plus the stored rule's offsets (``operating_point.predict_classes``);
multi-label findings, each finding's sigmoid probability against its own stored threshold.

A user may ask for another operating point: ``threshold`` (a number on the calibrated scale, as
``medtune final --operating-point 0.3``) or a rule (``sensitivity:0.90``, ``auto``, ...), which is
chosen on the held-out scores the bundle carries by ``operating_point.choose_threshold``, the code
``medtune final`` ran, so ``auto`` gives back exactly the stored threshold. A model without an
operating point (a sweep trial) predicts the most probable class; a rule that needs held-out labels
cannot be chosen for it, a number can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medtune.trainables.calibration import ScoreCalibration
from medtune.trainables.model_bundle import ModelBundle
from medtune.trainables.operating_point import (
    FIXED_RULE,
    choose_threshold,
    multiclass_log_offsets,
    parse_multiclass_operating_point,
    parse_operating_point,
    predict_classes,
)

#: The rule a model without an operating point predicts by.
ARGMAX = "argmax"


class OperatingPointError(ValueError):
    """An operating point that does not apply to this model; the message says why and what does."""


@dataclass(frozen=True)
class DecisionRule:
    """How probabilities become a predicted class (and, for two classes, a score and a decision).

    ``threshold`` is None unless the model has two classes and a threshold applies; ``calibration``
    maps the raw positive-class probability to the score the threshold is on; ``offsets`` are added
    to the log-probabilities before a multi-class argmax (None: the plain argmax)."""

    rule: str
    threshold: float | None = None
    calibration: ScoreCalibration | None = None
    offsets: np.ndarray | None = None
    source: str = "stored"  # stored (the model's own), chosen (on its held-out scores), given (--threshold)
    #: Multi-label findings: each finding's threshold on its own probability, in class order.
    thresholds: tuple[float, ...] | None = None

    def scores(self, probabilities: np.ndarray) -> np.ndarray:
        """The calibrated positive-class probability (two classes)."""
        raw = np.asarray(probabilities, dtype=np.float64)[:, -1]
        return raw.copy() if self.calibration is None else self.calibration.apply(raw)

    def apply(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(predicted class index, score, decision) of every row; score and decision are None
        without a threshold. Multi-label findings: the (N, L) 0/1 decisions, each finding's
        probability as its score, and the decisions as booleans."""
        if self.thresholds is not None:
            probs = np.asarray(probabilities, dtype=np.float64)
            decision = probs >= np.asarray(self.thresholds, dtype=np.float64)[None, :]
            return decision.astype(np.int64), probs.copy(), decision
        if self.threshold is None:
            return predict_classes(probabilities, self.offsets), None, None
        score = self.scores(probabilities)
        decision = score >= self.threshold
        return decision.astype(np.int64), score, decision


def decision_rule(bundle: ModelBundle, operating_point: str | None = None,
                  threshold: float | None = None) -> DecisionRule:
    """The rule to predict ``bundle``'s model by: its stored operating point, unless ``threshold``
    (a number on the calibrated scale) or ``operating_point`` (a rule, chosen on its held-out
    scores) asks for another. Raises ``OperatingPointError`` when the request does not apply."""
    if threshold is not None and operating_point is not None:
        raise OperatingPointError(f"operating point {operating_point!r} and threshold {threshold!r}: give one")
    if bundle.multilabel:
        return _multilabel_rule(bundle, operating_point, threshold)
    if bundle.binary:
        return _binary_rule(bundle, operating_point, threshold)
    if threshold is not None:
        raise OperatingPointError(f"--threshold {threshold}: a threshold applies to two-class models; this one has "
                                  f"{bundle.num_classes} classes (its operating points: balanced, prior)")
    return _multiclass_rule(bundle, operating_point)


#: A finding ``medtune final`` could not score (no held-out or test positives) has no stored
#: threshold; it is decided at the sigmoid's midpoint.
UNSCORED_THRESHOLD = 0.5


def _multilabel_rule(bundle: ModelBundle, operating_point: str | None, threshold: float | None) -> DecisionRule:
    """Each finding at its stored threshold, or every finding at ``threshold``. Another rule would be
    chosen per finding on held-out scores, which a multi-label bundle does not carry: refused."""
    if operating_point is not None:
        raise OperatingPointError(f"operating point {operating_point!r}: a multi-label model's thresholds were chosen "
                                  "per finding by medtune final, on held-out scores this model does not carry; give a "
                                  "number (--threshold) for every finding, or run medtune final with that rule")
    if threshold is not None:
        try:
            value = float(parse_operating_point(float(threshold)).value)
        except (TypeError, ValueError) as exc:
            raise OperatingPointError(f"--threshold {threshold!r}: {exc}") from None
        return DecisionRule(FIXED_RULE, thresholds=(value,) * bundle.num_classes, source="given")
    stored = (bundle.operating_point or {}).get("thresholds") or {}
    return DecisionRule(str((bundle.operating_point or {}).get("rule")),
                        thresholds=tuple(float(stored.get(name, UNSCORED_THRESHOLD)) for name in bundle.class_names))


def _stored_calibration(bundle: ModelBundle) -> ScoreCalibration | None:
    stored = (bundle.operating_point or {}).get("calibration")
    return ScoreCalibration.from_dict(stored) if isinstance(stored, dict) else None


def _binary_rule(bundle: ModelBundle, operating_point: str | None, threshold: float | None) -> DecisionRule:
    point = bundle.operating_point
    calibration = _stored_calibration(bundle)
    if threshold is not None:
        try:
            value = parse_operating_point(float(threshold))
        except (TypeError, ValueError) as exc:
            raise OperatingPointError(f"--threshold {threshold!r}: {exc}") from None
        return DecisionRule(FIXED_RULE, float(value.value), calibration, source="given")
    if operating_point is None:
        if not point or point.get("threshold") is None:
            return DecisionRule(ARGMAX)
        return DecisionRule(str(point.get("rule")), float(point["threshold"]), calibration)
    try:
        parsed = parse_operating_point(operating_point)
    except ValueError as exc:
        raise OperatingPointError(str(exc)) from None
    heldout = bundle.heldout
    if heldout is None:
        if parsed.needs_both_classes:
            raise OperatingPointError(
                f"operating point {parsed.label!r} is chosen on held-out scores, and this {bundle.kind} model carries "
                "none (only a medtune final model does); give a number (--threshold), or prior or cost:FN/FP=R")
        scores, labels = np.empty(0), np.empty(0, dtype=np.int64)
    else:
        scores, labels = heldout.scores, heldout.labels
    anchor = (point or {}).get("anchor")
    choice = choose_threshold(scores, labels, parsed, None if anchor is None else float(anchor))
    return DecisionRule(choice.rule, float(choice.value), calibration, source="chosen")


def _multiclass_rule(bundle: ModelBundle, operating_point: str | None) -> DecisionRule:
    point = bundle.operating_point or {}
    if operating_point is None:
        if not point:
            return DecisionRule(ARGMAX)
        rule = str(point.get("rule", "balanced"))
    else:
        try:
            rule = parse_multiclass_operating_point(operating_point)
        except ValueError as exc:
            raise OperatingPointError(str(exc)) from None
    priors = point.get("class_priors")
    if priors is None:
        if operating_point is not None:
            raise OperatingPointError(f"operating point {rule!r} needs the training class shares, and this "
                                      f"{bundle.kind} model carries none (only a medtune final model does)")
        return DecisionRule(ARGMAX)
    offsets = multiclass_log_offsets(rule, np.asarray(priors, dtype=np.float64), bool(point.get("class_weighted")))
    return DecisionRule(rule, offsets=offsets, source="stored" if operating_point is None else "chosen")
