"""The final report's decision threshold: the middle of the validation tie for the best Youden's J.

Why: with (almost) perfectly separated validation scores every threshold between the classes ties
for the best J, and sklearn's argmax returns an end of that gap (real runs: 0.045-0.051, or 0.960
on a small val set), which cost 5-7 points of test accuracy against 0.5 when test scores shifted.
Plain numpy arrays: no torch, no data files.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medtune.trainables import binary_report as report_module
from medtune.trainables.binary_report import (
    ThresholdChoice,
    build_report,
    choose_threshold,
    confusion,
    point_metrics,
    report_markdown,
    youden_threshold,
)

CLASSES = ("normal", "pneumonia")


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def j_at(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
    c = confusion(scores, labels, t)
    return c["tp"] / (c["tp"] + c["fn"]) - c["fp"] / (c["fp"] + c["tn"])


def separated() -> tuple[np.ndarray, np.ndarray]:
    scores = np.array([0.01, 0.02, 0.03, 0.04, 0.90, 0.93, 0.96, 0.99])
    return scores, np.repeat([0, 1], 4)


def test_separated_validation_gets_the_logit_midpoint_of_the_gap_not_an_end():
    scores, labels = separated()
    choice = choose_threshold(scores, labels)
    assert isinstance(choice, ThresholdChoice)
    assert choice.rule == "youden-mid"
    assert (choice.tied_low, choice.tied_high) == (0.04, 0.90)  # every t in (0.04, 0.90] has J = 1
    assert choice.best_j == 1.0
    assert choice.logit_width == pytest.approx(logit(0.90) - logit(0.04))
    assert choice.value == pytest.approx(sigmoid((logit(0.04) + logit(0.90)) / 2))
    assert 0.37 < choice.value < 0.39
    assert j_at(scores, labels, choice.value) == 1.0
    # The reason for the new rule: sklearn's argmax lands on an end of the tie (here the lowest
    # positive's score), so any positive scoring a little lower on test is missed.
    old = choose_threshold(scores, labels, "youden")
    assert old.rule == "youden"
    assert old.value == youden_threshold(scores, labels) == pytest.approx(0.90) == old.tied_high
    assert (old.tied_low, old.tied_high) == (choice.tied_low, choice.tied_high)


def test_float32_scores_get_a_threshold_that_classifies_alike_in_float32_and_float64():
    scores, labels = separated()
    scores32 = scores.astype(np.float32)
    choice = choose_threshold(scores32, labels)
    assert float(np.float32(choice.value)) == choice.value  # exactly representable: no rounding surprises
    assert np.array_equal(scores32 >= choice.value, scores32.astype(np.float64) >= choice.value)


def test_without_a_tie_the_midpoint_keeps_the_best_j_confusion_matrix_on_validation():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], [120, 80])
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1.2, 200) + 1.5 * labels)))
    choice = choose_threshold(scores, labels)
    distinct = np.unique(scores)
    js = np.array([j_at(scores, labels, t) for t in distinct])
    assert (js >= js.max() - 1e-12).sum() == 1  # J's maximum is unique here
    best = float(distinct[np.argmax(js)])
    assert choice.tied_high == best
    assert choice.tied_low == float(distinct[np.argmax(js) - 1])  # the score just below
    assert choice.tied_low < choice.value <= choice.tied_high
    assert choice.value != youden_threshold(scores, labels)  # moved inside the tie ...
    assert confusion(scores, labels, choice.value) == confusion(scores, labels, youden_threshold(scores, labels))
    assert choice.best_j == pytest.approx(js.max())  # ... without changing anything on validation


def test_every_threshold_in_the_chosen_interval_reaches_the_best_j():
    rng = np.random.default_rng(11)
    labels = np.repeat([0, 1], [60, 40])
    scores = np.round(np.clip(0.35 + 0.3 * labels + rng.normal(0, 0.1, 100), 0, 1), 2)  # rounded: ties in scores
    choice = choose_threshold(scores, labels)
    distinct = np.unique(scores)
    candidates = np.concatenate([distinct, (distinct[1:] + distinct[:-1]) / 2,
                                 [distinct[0] - 0.01, distinct[-1] + 0.01]])
    for t in candidates:
        tied = abs(j_at(scores, labels, t) - choice.best_j) <= 1e-12
        inside = choice.tied_low < t <= choice.tied_high
        if inside:  # inside the chosen run means tied
            assert tied, t


def test_of_separate_tying_intervals_the_widest_in_logit_space_is_chosen():
    # J by threshold class: (0.2, 0.3] and (0.4, 0.5] both reach 2/3, (0.3, 0.4] between them 1/3.
    # Their hull's middle (1/3) would fall in that gap; the wider run in logit space, (0.2, 0.3], is kept.
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0, 0, 1, 0, 1, 1])
    choice = choose_threshold(scores, labels)
    assert choice.best_j == pytest.approx(2 / 3)
    assert logit(0.3) - logit(0.2) > logit(0.5) - logit(0.4)
    assert (choice.tied_low, choice.tied_high) == (0.2, 0.3)
    assert choice.logit_width == pytest.approx(logit(0.3) - logit(0.2))
    assert choice.value == pytest.approx(sigmoid((logit(0.2) + logit(0.3)) / 2))
    assert j_at(scores, labels, choice.value) == pytest.approx(2 / 3)  # still a best-J threshold on validation
    # sklearn's argmax of float tpr - fpr picks among exact ties by rounding (here 1 - 1/3 > 2/3 - 0).
    assert choose_threshold(scores, labels, "youden").value in (pytest.approx(0.3), pytest.approx(0.5))


def test_ties_that_reach_past_every_score_are_unbounded_and_give_one_half():
    labels = np.array([0, 0, 1, 1])
    for scores in (np.full(4, 0.3), np.array([0.8, 0.9, 0.1, 0.2])):  # constant; inverted: best J is 0
        choice = choose_threshold(scores, labels)
        assert choice.best_j == 0.0
        assert (choice.tied_low, choice.tied_high) == (-math.inf, math.inf)
        assert choice.value == 0.5
        assert choice.logit_width == pytest.approx(2 * logit(1 - 1e-6))  # clipped to [1e-6, 1 - 1e-6]


def test_narrow_or_clipped_gaps_keep_the_threshold_inside_the_tie():
    labels = np.array([0, 1])
    low = np.float32(0.5)
    adjacent = np.array([low, np.nextafter(low, np.float32(1))], dtype=np.float32)  # no float32 between them
    choice = choose_threshold(adjacent, labels)
    assert choice.tied_low < choice.value <= choice.tied_high
    assert confusion(adjacent, labels, choice.value) == {"tp": 1, "fn": 0, "tn": 1, "fp": 0}
    tiny = np.array([0.0, 1e-8])  # both ends clip to 1e-6 for the logit
    choice = choose_threshold(tiny, labels)
    assert choice.value == 1e-8 and choice.logit_width == 0.0
    assert confusion(tiny, labels, choice.value) == {"tp": 1, "fn": 0, "tn": 1, "fp": 0}


def test_single_class_validation_gives_one_half_and_says_so():
    scores = np.array([0.1, 0.7, 0.9])
    for rule in ("youden-mid", "youden"):
        choice = choose_threshold(scores, np.zeros(3, dtype=int), rule)
        assert choice.value == 0.5 and choice.rule == "single-class"
        assert math.isnan(choice.tied_low) and math.isnan(choice.tied_high) and math.isnan(choice.best_j)
    assert youden_threshold(scores, np.ones(3, dtype=int)) == 0.5  # unchanged
    assert choose_threshold(scores, np.ones(3, dtype=int), "0.3").value == 0.3  # fixed needs no labels


def test_fixed_rule_as_string_or_number():
    scores, labels = separated()
    for rule in ("0.5", " 0.5 ", 0.5):
        choice = choose_threshold(scores, labels, rule)
        assert choice.value == 0.5 and choice.rule == "fixed"
        assert (choice.tied_low, choice.tied_high) == (0.04, 0.90)  # the data's tie is still reported
    assert choose_threshold(scores, labels, 0.25).value == 0.25


@pytest.mark.parametrize("rule", ["youden_mid", "midpoint", "", "nan", "inf"])
def test_unknown_rule_raises_naming_it_and_the_accepted_ones(rule):
    scores, labels = separated()
    with pytest.raises(ValueError) as err:
        choose_threshold(scores, labels, rule)
    assert repr(rule) in str(err.value)
    assert "youden-mid" in str(err.value) and "youden" in str(err.value)


@pytest.mark.slow  # bootstraps every rule's intervals (5-9 s)
def test_build_report_carries_the_rule_the_tie_and_the_metrics_at_one_half():
    val_scores, val_labels = separated()
    # Test split shifted: negatives score higher, positives lower than on validation.
    test_labels = np.repeat([0, 1], [30, 20])
    test_scores = np.concatenate([np.linspace(0.05, 0.33, 30), np.linspace(0.45, 0.95, 20)])
    report = build_report("m", val_scores, val_labels, test_scores, test_labels, CLASSES)
    expected = choose_threshold(val_scores, val_labels)
    assert report.threshold == expected.value
    assert report.threshold_rule == "youden-mid"
    assert report.tied_interval == (0.04, 0.90)
    assert report.tied_logit_width == pytest.approx(expected.logit_width)
    assert report.metrics["accuracy"] == 1.0  # the gap's middle survives the shift
    assert report.metrics_at_half == point_metrics(test_scores, test_labels, 0.5)
    assert report.metrics_at_half["accuracy"] == pytest.approx(48 / 50)  # two positives score < 0.5

    old = build_report("m", val_scores, val_labels, test_scores, test_labels, CLASSES, threshold_rule="youden")
    assert old.threshold_rule == "youden" and old.threshold == pytest.approx(0.90)
    assert old.metrics["accuracy"] < 0.8  # the gap's end does not
    fixed = build_report("m", val_scores, val_labels, test_scores, test_labels, CLASSES, threshold_rule="0.5")
    assert fixed.threshold == 0.5 and fixed.metrics == fixed.metrics_at_half

    d = report.to_dict()
    assert d["threshold_rule"] == "youden-mid"
    assert d["tied_interval"] == [0.04, 0.90]
    assert d["tied_logit_width"] == report.tied_logit_width
    assert d["accuracy_at_0.5"] == report.metrics_at_half["accuracy"]
    assert d["metrics_at_0.5"] == report.metrics_at_half
    assert json.loads(json.dumps(d))["threshold_rule"] == "youden-mid"

    md = report_markdown([report, old], "Final")
    assert "midpoint, in logit space, of the thresholds that tie for the best Youden's J on validation data" in md
    assert "| threshold rule | youden-mid | youden |" in md
    assert f"| tied interval (logit width) | (0.040, 0.900] ({report.tied_logit_width:.2f}) |" in md
    assert f"| accuracy at 0.5 | {report.metrics_at_half['accuracy']:.3f} | " \
           f"{old.metrics_at_half['accuracy']:.3f} |" in md
    assert "best Youden's J point sklearn's roc_curve returns" in md  # the second report's rule is named too


def test_reports_built_the_old_way_still_render():
    report = report_module.TestReport(name="m", threshold=0.4,
                        metrics={m: 0.5 for m in ("accuracy", "roc_auc", "sensitivity",
                                                  "specificity", "precision", "f1")},
                        intervals={m: (0.4, 0.6) for m in ("accuracy", "roc_auc", "sensitivity", "specificity",
                                                           "precision", "f1")},
                        confusion={"tp": 1, "fn": 1, "tn": 1, "fp": 1}, n_test=4, class_names=CLASSES)
    assert report.to_dict()["threshold_rule"] == "unspecified"
    md = report_markdown([report], "Final")
    assert "| accuracy at 0.5 | n/a |" in md and "| tied interval (logit width) | n/a |" in md


def test_calibrated_is_the_old_name_of_balanced_whose_raw_threshold_is_where_a_balanced_fit_crosses_one_half():
    from medtune.trainables.calibration import fit_platt

    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], [60, 140])  # unbalanced: the balanced point must not follow the prevalence
    logits = np.where(labels == 1, 1.5, -1.5) + rng.normal(0, 1.0, 200)
    scores = 1 / (1 + np.exp(-logits))
    calibration = fit_platt(scores, labels)
    calibrated = calibration.apply(scores)
    choice = choose_threshold(calibrated, labels, "calibrated")
    assert choice.rule == "balanced"  # the old name is accepted and recorded under the new one
    assert choice == choose_threshold(calibrated, labels, "balanced")
    assert choice.value == pytest.approx(140 / 200)  # the held-out positive share, on the calibrated scale
    # Posterior odds = prior odds is where a class-balanced logistic fit crosses 0.5 (what the old
    # rule computed): on the raw scale the two agree up to the fits' differences.
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(class_weight="balanced").fit(np.log(scores / (1 - scores)).reshape(-1, 1), labels)
    old = -fit.intercept_[0] / fit.coef_[0, 0]
    assert logit(calibration.raw_threshold(choice.value)) == pytest.approx(old, abs=0.15)
    assert 0.35 < calibration.raw_threshold(choice.value) < 0.65  # the classes' centres are symmetric about 0


@pytest.mark.slow  # bootstraps every rule's intervals (5-9 s)
def test_report_gives_every_rules_threshold_and_test_metrics():
    val_scores = np.array([0.01, 0.02, 0.03, 0.04, 0.9, 0.95, 0.97, 0.99])
    val_labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    test_scores = np.array([0.2, 0.6, 0.95, 0.3])
    test_labels = np.array([0, 0, 1, 1])
    report = build_report("m", val_scores, val_labels, test_scores, test_labels, ("neg", "pos"))
    by_rule = report.to_dict()["by_rule"]
    assert set(by_rule) == {"balanced-1se", "youden-mid", "youden", "balanced", "prior", "sensitivity:0.90",
                            "specificity:0.90", "cost:FN/FP=5"}
    for row in by_rule.values():
        assert set(row) == {"threshold", "accuracy", "balanced_accuracy", "sensitivity", "specificity"}
        assert row["balanced_accuracy"] == pytest.approx((row["sensitivity"] + row["specificity"]) / 2)
    assert by_rule["youden-mid"]["threshold"] == report.threshold
    assert by_rule["prior"]["threshold"] == 0.5 and by_rule["prior"]["accuracy"] == report.metrics_at_half["accuracy"]
    assert by_rule["balanced"]["threshold"] == 0.5  # half the held-out images are positive
    assert by_rule["cost:FN/FP=5"]["threshold"] == pytest.approx(1 / 6)
    assert by_rule["youden"]["threshold"] == pytest.approx(0.9)
    chosen = build_report("m", val_scores, val_labels, test_scores, test_labels, ("neg", "pos"),
                          threshold_rule="sensitivity:0.75")
    assert "sensitivity:0.75" in chosen.by_rule  # the chosen rule gets its row too
    assert chosen.by_rule["sensitivity:0.75"]["threshold"] == chosen.threshold
