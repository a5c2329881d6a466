"""Platt scaling of a two-class model's scores, and the expected calibration error.

Why: on a held-back breast-ultrasound set the final model's scores had collapsed toward 0 (the
balanced cut-off sat at 0.008), so 0.5 missed half the malignant cases; the map fitted on held-out
scores must recover such a shift, stay finite when held-out scores separate the classes, keep the
ranking (AUC), and fall back to the identity when the scores do not rank the classes at all.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medtune.trainables.calibration import ScoreCalibration, expected_calibration_error, fit_platt


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_the_fit_recovers_a_known_slope_and_intercept():
    rng = np.random.default_rng(0)
    raw_logits = rng.normal(-3.0, 2.0, 40_000)  # a model whose scores sit far too low
    slope, intercept = 0.6, 1.4
    labels = (rng.random(len(raw_logits)) < sigmoid(slope * raw_logits + intercept)).astype(int)
    calibration = fit_platt(sigmoid(raw_logits), labels)
    assert calibration.method == "platt" and calibration.fitted_on == 40_000
    assert calibration.slope == pytest.approx(slope, abs=0.03)
    assert calibration.intercept == pytest.approx(intercept, abs=0.05)
    calibrated = calibration.apply(sigmoid(raw_logits))
    assert calibrated.mean() == pytest.approx(labels.mean(), abs=0.005)  # the scale is right on average too


def test_separated_held_out_scores_give_a_finite_increasing_map():
    scores = np.array([0.01, 0.02, 0.03, 0.04, 0.90, 0.93, 0.96, 0.99])
    labels = np.repeat([0, 1], 4)
    calibration = fit_platt(scores, labels)
    assert calibration.method == "platt"
    assert math.isfinite(calibration.slope) and math.isfinite(calibration.intercept) and calibration.slope > 0
    calibrated = calibration.apply(scores)
    assert np.all(np.diff(calibrated) > 0) and np.all((calibrated > 0) & (calibrated < 1))
    # Platt's smoothed targets: the extreme images are pulled toward 1/(N- + 2) and (N+ + 1)/(N+ + 2), not to 0 and 1.
    assert calibrated[0] > 1e-4 and calibrated[-1] < 1 - 1e-4


def test_the_map_keeps_the_ranking_and_its_inverse_gives_the_raw_threshold():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    raw = sigmoid(rng.normal(-5 + 2 * labels, 1.0)).astype(np.float32)  # float32, as a softmax gives them
    raw[:3] = [0.0, 1.0, 1e-30]  # saturated outputs stay finite and in order
    calibration = fit_platt(raw, labels)
    calibrated = calibration.apply(raw)
    assert calibrated.dtype == np.float64 and np.all(np.isfinite(calibrated))
    assert roc_auc_score(labels, calibrated) == roc_auc_score(labels, raw)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(calibrated[order]) >= 0)
    for t in (0.1, 0.3, 0.5, 0.8):
        raw_t = calibration.raw_threshold(t)
        assert float(calibration.apply(np.array([raw_t]))[0]) == pytest.approx(t, rel=1e-9)
        z = calibration.raw_logit_threshold(t)
        assert float(sigmoid(calibration.slope * z + calibration.intercept)) == pytest.approx(t, rel=1e-9)
        assert np.array_equal(calibrated >= t, raw.astype(np.float64) >= raw_t)  # the same decisions


def test_scores_that_do_not_rank_the_classes_keep_the_identity_and_say_why():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    labels = np.array([0, 0, 0, 1, 1, 1])  # inverted: the fitted slope is negative
    calibration = fit_platt(scores, labels)
    assert calibration.method == "identity" and calibration.is_identity
    assert "do not rank" in calibration.reason and calibration.fitted_on == 6
    assert np.array_equal(calibration.apply(scores), scores)
    assert calibration.raw_threshold(0.37) == 0.37
    single = fit_platt(scores, np.zeros(6, dtype=int))
    assert single.is_identity and "single class" in single.reason
    assert "identity" in single.describe()


def test_the_map_round_trips_through_json():
    calibration = fit_platt(np.array([0.01, 0.2, 0.3, 0.6, 0.7, 0.95]), np.array([0, 0, 1, 0, 1, 1]))
    again = ScoreCalibration.from_dict(json.loads(json.dumps(calibration.to_dict(), allow_nan=False)))
    assert again == calibration
    assert ScoreCalibration.from_dict(ScoreCalibration.identity("x").to_dict()).is_identity
    with pytest.raises(ValueError, match="isotonic"):
        ScoreCalibration.from_dict({"method": "isotonic"})
    assert "Platt scaling" in calibration.describe() and "6 held-out images" in calibration.describe()


def test_ece_is_small_for_calibrated_scores_and_large_for_shifted_ones():
    rng = np.random.default_rng(2)
    p = rng.random(20_000)
    labels = (rng.random(len(p)) < p).astype(int)
    assert expected_calibration_error(p, labels) < 0.02
    shifted = sigmoid(logit(p) - 3.0)  # collapsed toward 0, as in the breast run
    assert expected_calibration_error(shifted, labels) > 0.2
    assert expected_calibration_error(fit_platt(shifted, labels).apply(shifted), labels) < 0.02


def test_ece_is_the_count_weighted_gap_per_equal_width_bin():
    scores = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
    labels = np.array([0, 1, 0, 1, 1])
    # bins [0, 0.1): 0.05 vs 0; [0.1, 0.2): 0.15 vs 0.5 (2 images); [0.9, 1]: 0.975 vs 1 (2 images)
    expected = (1 * 0.05 + 2 * 0.35 + 2 * 0.025) / 5
    assert expected_calibration_error(scores, labels) == pytest.approx(expected)
    assert math.isnan(expected_calibration_error(np.array([]), np.array([])))
