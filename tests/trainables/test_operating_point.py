"""Operating points: every two-class rule on small hand-built score sets, the parser's errors, the
collapsed-scores failure that calibration fixes, and the multi-class prior shift.

Why: ``medtune final --threshold auto`` chose 0.5 for a class-weighted breast-ultrasound model whose
scores had collapsed toward 0; at 0.5 half the malignant cases were missed. Every rule now reads
calibrated held-out scores, and ``auto`` is a rule that does not depend on where raw scores sit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtune.trainables.binary_report import choose_threshold as old_home_choose_threshold
from medtune.trainables.binary_report import confusion, point_metrics
from medtune.trainables.calibration import fit_platt
from medtune.trainables.multiclass_report import build_multiclass_report
from medtune.trainables.operating_point import (
    ACCEPTED,
    DEFAULT_MULTICLASS_OPERATING_POINT,
    DEFAULT_OPERATING_POINT,
    OperatingPoint,
    choose_threshold,
    class_priors,
    describe_threshold_rule,
    model_anchor,
    multiclass_log_offsets,
    parse_multiclass_operating_point,
    parse_operating_point,
)

# Ten calibrated held-out scores, four positives (pi = 0.4); sorted, so index = rank.
SCORES = np.array([0.05, 0.10, 0.20, 0.30, 0.35, 0.45, 0.55, 0.70, 0.80, 0.90])
LABELS = np.array([0, 0, 0, 1, 0, 0, 1, 0, 1, 1])


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def rates(scores: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float]:
    c = confusion(scores, labels, t)
    return c["tp"] / (c["tp"] + c["fn"]), c["tn"] / (c["tn"] + c["fp"])


def test_the_rules_moved_but_the_old_import_still_works():
    assert old_home_choose_threshold is choose_threshold


def test_balanced_is_the_held_out_positive_share_and_prior_is_one_half():
    balanced = choose_threshold(SCORES, LABELS, "balanced")
    assert balanced.rule == "balanced" and balanced.value == pytest.approx(0.4)
    assert choose_threshold(SCORES, LABELS, "calibrated") == balanced  # the old name, the same rule
    prior = choose_threshold(SCORES, LABELS, "prior")
    assert prior.rule == "prior" and prior.value == 0.5
    # Bayes for balanced accuracy sits below Bayes for accuracy when positives are the minority.
    assert rates(SCORES, LABELS, balanced.value)[0] >= rates(SCORES, LABELS, prior.value)[0]


def test_auto_is_the_default_operating_point():
    assert DEFAULT_OPERATING_POINT == "balanced-1se" and DEFAULT_MULTICLASS_OPERATING_POINT == "balanced"
    assert parse_operating_point("auto") == parse_operating_point(DEFAULT_OPERATING_POINT)
    assert choose_threshold(SCORES, LABELS, "auto") == choose_threshold(SCORES, LABELS, DEFAULT_OPERATING_POINT)


@pytest.mark.parametrize("target", [0.5, 0.75, 1.0])
def test_sensitivity_target_is_met_on_held_out_at_the_highest_such_threshold(target):
    choice = choose_threshold(SCORES, LABELS, f"sensitivity:{target}")
    assert choice.rule == f"sensitivity:{target:.2f}"
    sensitivity, _ = rates(SCORES, LABELS, choice.value)
    assert sensitivity >= target
    above = SCORES[SCORES >= choice.value]
    higher = np.unique(above)[1] if len(np.unique(above)) > 1 else math.inf  # the next score up
    assert rates(SCORES, LABELS, higher)[0] < target  # any higher threshold class misses the target
    # placed at the logit middle of the thresholds that give that same held-out confusion
    low = SCORES[SCORES < choice.value].max() if (SCORES < choice.value).any() else 1e-6
    high = above.min()
    assert choice.value == pytest.approx(sigmoid((logit(max(low, 1e-6)) + logit(high)) / 2))
    assert confusion(SCORES, LABELS, choice.value) == confusion(SCORES, LABELS, high)


def test_sensitivity_and_specificity_rules_on_hand_built_scores():
    # 4 positives at 0.30, 0.55, 0.80, 0.90: 0.75 needs three of them, the highest such class is t in (0.45, 0.55]
    assert choose_threshold(SCORES, LABELS, "sensitivity:0.75").value == pytest.approx(
        sigmoid((logit(0.45) + logit(0.55)) / 2))
    # 6 negatives at 0.05 ... 0.70: specificity 0.8 needs 5 of 6 below the threshold: lowest class t in (0.45, 0.55]
    spec = choose_threshold(SCORES, LABELS, "specificity:0.80")
    assert spec.rule == "specificity:0.80" and rates(SCORES, LABELS, spec.value)[1] >= 0.8
    assert spec.value == pytest.approx(sigmoid((logit(0.45) + logit(0.55)) / 2))
    full = choose_threshold(SCORES, LABELS, "specificity:1")  # every negative below: t in (0.70, 0.80]
    assert rates(SCORES, LABELS, full.value) == (0.5, 1.0)
    assert 0.70 < full.value <= 0.80


@pytest.mark.parametrize("ratio", [0.5, 1, 4, 9])
def test_cost_rule_is_the_bayes_threshold(ratio):
    choice = choose_threshold(SCORES, LABELS, f"cost:FN/FP={ratio}")
    assert choice.value == pytest.approx(1 / (1 + ratio))
    assert choice.rule == f"cost:FN/FP={ratio:g}"
    assert "Bayes threshold" in describe_threshold_rule(choice.rule)


def test_a_number_is_a_fixed_threshold_on_the_calibrated_scale():
    for rule in ("0.3", 0.3, " 0.30 "):
        choice = choose_threshold(SCORES, LABELS, rule)
        assert choice.value == 0.3 and choice.rule == "fixed"
    assert parse_operating_point("0.3").label == "0.3"


def test_youden_rules_decide_alike_on_raw_and_calibrated_scores():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1], [150, 50])
    raw = sigmoid(rng.normal(np.where(labels == 1, -3.0, -5.0), 1.0))
    calibration = fit_platt(raw, labels)
    calibrated = calibration.apply(raw)
    for rule in ("youden-mid", "youden"):
        on_raw = choose_threshold(raw, labels, rule).value
        on_calibrated = choose_threshold(calibrated, labels, rule).value
        assert confusion(raw, labels, on_raw) == confusion(calibrated, labels, on_calibrated), rule


def test_a_single_class_held_out_set_keeps_the_old_behaviour():
    ones = np.ones(len(SCORES), dtype=int)
    for rule in ("balanced", "youden-mid", "youden", "sensitivity:0.9", "specificity:0.9"):
        choice = choose_threshold(SCORES, ones, rule)
        assert (choice.value, choice.rule) == (0.5, "single-class"), rule
    assert choose_threshold(SCORES, ones, "0.3").value == 0.3  # rules that need no labels keep their value
    assert choose_threshold(SCORES, ones, "prior").value == 0.5
    assert choose_threshold(SCORES, ones, "cost:FN/FP=3").value == 0.25


def test_every_rule_has_a_phrase():
    for rule in ("balanced", "calibrated", "prior", "youden-mid", "youden", "sensitivity:0.90", "specificity:0.95",
                 "cost:FN/FP=5", "single-class"):
        assert not describe_threshold_rule(rule).startswith("rule "), rule
    assert describe_threshold_rule("fixed", 0.3) == "fixed at 0.3, not chosen on data"
    assert "sensitivity is at least 0.90" in describe_threshold_rule("sensitivity:0.90")


@pytest.mark.parametrize("text, label", [("Balanced", "balanced"), ("calibrated", "balanced"), ("PRIOR", "prior"),
                                         ("sensitivity:0.9", "sensitivity:0.90"),
                                         ("Specificity: 0.95", "specificity:0.95"),
                                         ("sensitivity:0.975", "sensitivity:0.975"),
                                         ("cost:fn/fp=5", "cost:FN/FP=5"), ("cost:FN/FP = 2.5", "cost:FN/FP=2.5"),
                                         ("0.5", "0.5"), ("1", "1"), ("0", "0")])
def test_the_parser_reads_every_form(text, label):
    assert parse_operating_point(text).label == label


@pytest.mark.parametrize("text, says", [
    ("median", "expected"), ("sensitivity:1.5", "target must be a number in (0, 1]"),
    ("sensitivity:0", "target must be a number in (0, 1]"), ("specificity:high", "target must be"),
    ("cost:5", "cost:FN/FP=R"), ("cost:FN/FP=0", "positive number"), ("cost:FN/FP=-2", "positive number"),
    ("1.5", "must be in [0, 1]"), ("nan", "expected"), ("", "expected"), ("sensitivity", "expected")])
def test_the_parser_names_the_text_and_the_accepted_forms(text, says):
    with pytest.raises(ValueError) as err:
        parse_operating_point(text)
    message = str(err.value)
    assert repr(text) in message and says in message and ACCEPTED in message


def test_collapsed_scores_auto_keeps_both_rates_where_raw_one_half_calls_nearly_everything_negative():
    """The breast run in miniature: a class-weighted model's scores squeezed toward 0 (negatives
    around 0.001, positives around 0.01), held-out and test drawn alike."""
    rng = np.random.default_rng(7)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = (rng.random(n) < 0.3).astype(int)
        return sigmoid(rng.normal(np.where(labels == 1, -4.5, -7.0), 1.0)), labels

    val_raw, val_labels = draw(300)
    test_raw, test_labels = draw(600)
    at_half = point_metrics(test_raw, test_labels, 0.5)
    assert at_half["sensitivity"] < 0.02 and (test_raw >= 0.5).mean() < 0.01  # raw 0.5: nearly all negative

    calibration = fit_platt(val_raw, val_labels)
    choice = choose_threshold(calibration.apply(val_raw), val_labels, "auto")
    test = point_metrics(calibration.apply(test_raw), test_labels, choice.value)
    assert min(test["sensitivity"], test["specificity"]) > 0.75
    assert test["balanced_accuracy"] > at_half["balanced_accuracy"] + 0.3
    assert calibration.raw_threshold(choice.value) < 0.05  # on the raw scale the cut-off sits far below 0.5


def _held_out_balanced_accuracy(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
    sensitivity, specificity = rates(scores, labels, t)
    return (sensitivity + specificity) / 2


def test_balanced_1se_keeps_the_models_own_point_when_held_out_cannot_tell_it_from_the_best():
    """Held-out scores that separate the classes: every threshold in the gap is as good on held-out
    images, so the threshold stays where the class-weighted model put its balance (its anchor)."""
    scores = np.array([0.01, 0.02, 0.03, 0.05, 0.08, 0.6, 0.9, 0.95, 0.97, 0.99])
    labels = np.repeat([0, 1], 5)
    for anchor in (0.3, 0.5, 0.55):
        assert choose_threshold(scores, labels, "balanced-1se", anchor).value == pytest.approx(anchor)
    # Without an anchor the rule starts from 0.5; the anchor of an unweighted model is its training prevalence.
    assert choose_threshold(scores, labels, "balanced-1se").value == pytest.approx(0.5)
    assert model_anchor(True, 0.74) == 0.5 and model_anchor(False, 0.74) == pytest.approx(0.74)


def test_balanced_1se_moves_only_as_far_as_held_out_evidence_demands():
    """Overlapping classes whose best held-out point is far from the anchor (collapsed scores): the
    threshold leaves the anchor for the nearest one within one standard error of the best balanced
    accuracy, and no further."""
    rng = np.random.default_rng(3)
    labels = (rng.random(600) < 0.3).astype(int)
    scores = sigmoid(rng.normal(np.where(labels == 1, -4.5, -7.0), 1.0))
    thresholds = np.unique(scores)
    held_out = np.array([_held_out_balanced_accuracy(scores, labels, t) for t in thresholds])
    best = held_out.max()
    chosen = choose_threshold(scores, labels, "balanced-1se", 0.5).value
    reached = _held_out_balanced_accuracy(scores, labels, chosen)
    assert best - 0.05 < reached <= best and chosen < 0.05  # far below the anchor, close to the best
    # No threshold nearer the anchor keeps its held-out balanced accuracy within the band it stopped at.
    nearer = thresholds[thresholds > chosen]
    assert all(_held_out_balanced_accuracy(scores, labels, t) < reached for t in nearer)
    # The band: one standard error of the best point's balanced accuracy, below the best.
    assert reached >= best - 0.5 * math.sqrt(2 * 0.25 / 170 + 0.25 / 430 * 2)


# --- more than two classes ---------------------------------------------------------------------------


def _imbalanced_task(seed: int = 0, n: int = 6000):
    """Three classes at shares 0.7 / 0.2 / 0.1, overlapping Gaussians in 2-D. Returns the labels, the
    true posteriors (an unweighted model's ideal output), the balanced posteriors (what a
    class-weighted model's probabilities aim at: the likelihoods normalised) and the priors."""
    rng = np.random.default_rng(seed)
    priors = np.array([0.7, 0.2, 0.1])
    labels = rng.choice(3, size=n, p=priors)
    means = np.array([[0.0, 0.0], [1.4, 0.0], [0.0, 1.4]])
    x = means[labels] + rng.normal(size=(n, 2))
    log_lik = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(axis=2)
    balanced = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    balanced /= balanced.sum(axis=1, keepdims=True)
    posterior = balanced * priors
    posterior /= posterior.sum(axis=1, keepdims=True)
    return labels, posterior, balanced, priors


def test_multiclass_prior_raises_accuracy_and_balanced_raises_balanced_accuracy():
    labels, _, weighted_model, _ = _imbalanced_task()
    names = ("common", "rarer", "rarest")
    priors = class_priors(labels, 3)
    balanced = build_multiclass_report("m", weighted_model, labels, names, samples=20, rule="balanced", priors=priors)
    prior = build_multiclass_report("m", weighted_model, labels, names, samples=20, rule="prior", priors=priors)
    assert balanced.threshold_rule == "balanced" and prior.threshold_rule == "prior"
    assert prior.metrics["accuracy"] > balanced.metrics["accuracy"] + 0.05
    assert balanced.metrics["balanced_accuracy"] > prior.metrics["balanced_accuracy"] + 0.05
    assert balanced.metrics["roc_auc"] == prior.metrics["roc_auc"]  # only the predicted class changes
    assert balanced.by_rule == prior.by_rule
    assert balanced.by_rule["prior"]["accuracy"] == prior.metrics["accuracy"]
    # a class-weighted model's "balanced" is its plain argmax
    assert balanced.confusion == build_multiclass_report("m", weighted_model, labels, names, samples=20).confusion
    d = prior.to_dict()
    assert d["threshold_rule"] == "prior" and set(d["by_rule"]) == {"balanced", "prior"}
    assert d["class_priors"] == pytest.approx(list(priors)) and d["class_weighted"] is True


def test_an_unweighted_model_is_shifted_the_other_way():
    labels, _, weighted_model, _ = _imbalanced_task(seed=1)
    names = ("a", "b", "c")
    priors = class_priors(labels, 3)
    posterior = weighted_model * priors  # the ideal unweighted model at the training shares
    posterior /= posterior.sum(axis=1, keepdims=True)
    for rule in ("balanced", "prior"):
        unweighted = build_multiclass_report("m", posterior, labels, names, samples=20, rule=rule, priors=priors,
                                             class_weighted=False)
        weighted = build_multiclass_report("m", weighted_model, labels, names, samples=20, rule=rule, priors=priors)
        # the two models differ exactly by the priors, so each rule predicts the same classes from either
        assert unweighted.confusion == weighted.confusion, rule
    plain = build_multiclass_report("m", posterior, labels, names, samples=20, rule="prior", priors=priors,
                                    class_weighted=False)
    assert plain.confusion == build_multiclass_report("m", posterior, labels, names, samples=20).confusion
    assert multiclass_log_offsets("prior", priors, class_weighted=False) is None
    assert multiclass_log_offsets("balanced", priors, class_weighted=False) == pytest.approx(-np.log(priors))
    assert multiclass_log_offsets("prior", priors, class_weighted=True) == pytest.approx(np.log(priors))


def test_multiclass_rules_refuse_thresholds():
    assert parse_multiclass_operating_point("auto") == DEFAULT_MULTICLASS_OPERATING_POINT
    assert parse_multiclass_operating_point("calibrated") == "balanced"
    for rule in ("0.5", "youden-mid", "sensitivity:0.9", "cost:FN/FP=5"):
        with pytest.raises(ValueError, match="applies to two-class tasks"):
            parse_multiclass_operating_point(rule)
    with pytest.raises(ValueError, match="needs the training class priors"):
        build_multiclass_report("m", np.full((3, 3), 1 / 3), np.arange(3), ("a", "b", "c"), rule="prior")
    assert class_priors(np.array([0, 0, 1]), 3) == pytest.approx([0.5, 0.25, 0.25])  # an absent class counts once
    assert isinstance(parse_operating_point(OperatingPoint("prior")), OperatingPoint)
