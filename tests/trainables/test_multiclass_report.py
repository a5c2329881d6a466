"""The multi-class test report: headline metrics with CIs, per-class rates, the K x K matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from medtune.search.results.report_html import render_report_html
from medtune.trainables.multiclass_report import build_multiclass_report, headline_metrics, multiclass_markdown

NAMES = ("basophil", "eosinophil", "erythroblast", "lymphocyte")
SAMPLES = 200  # bootstrap resamples: enough for the intervals these tests check, a fifth of the time


def _probs(n: int = 200, classes: int = 4, signal: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += signal
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True), labels


def test_headline_metrics_are_scikit_learns():
    probs, labels = _probs()
    m = headline_metrics(probs, labels, 4)
    assert m["accuracy"] == pytest.approx((probs.argmax(1) == labels).mean())
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probs.argmax(1)))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    missing = labels != 3
    assert math.isnan(headline_metrics(probs[missing], labels[missing], 4)["roc_auc"])  # a class absent: undefined


def test_per_class_rates_and_the_matrix():
    probs, labels = _probs()
    report = build_multiclass_report("best model", probs, labels, NAMES, samples=SAMPLES)
    matrix = confusion_matrix(labels, probs.argmax(1), labels=range(4))
    assert report.confusion == matrix.tolist()
    for k, name in enumerate(NAMES):
        is_k, says_k = labels == k, probs.argmax(1) == k
        assert report.per_class[name]["sensitivity"] == pytest.approx((says_k & is_k).sum() / is_k.sum())
        assert report.per_class[name]["specificity"] == pytest.approx((~says_k & ~is_k).sum() / (~is_k).sum())
        assert report.per_class[name]["roc_auc"] == pytest.approx(roc_auc_score(is_k, probs[:, k]))
        assert report.per_class[name]["n"] == int(is_k.sum())
    for m, (low, high) in report.intervals.items():
        assert low <= report.metrics[m] <= high and high - low < 0.3, m


def test_a_better_model_gets_a_better_report():
    weak = build_multiclass_report("weak", *_probs(signal=0.5), NAMES, samples=SAMPLES)
    strong = build_multiclass_report("strong", *_probs(signal=3.0), NAMES, samples=SAMPLES)
    assert strong.metrics["balanced_accuracy"] > weak.intervals["balanced_accuracy"][1]


def test_markdown_and_html_show_every_class_and_the_same_numbers():
    probs, labels = _probs()
    report = build_multiclass_report("best model", probs, labels, NAMES, samples=SAMPLES)
    text = multiclass_markdown([report], "Final test report")
    assert all(name in text for name in NAMES) and f"{report.metrics['roc_auc']:.3f}" in text
    page = render_report_html(__import__("pathlib").Path("/nonexistent"), {"reports": [report.to_dict()]}, "t")
    for i, row in enumerate(report.confusion):
        for j, value in enumerate(row):
            assert f'data-confusion="0:{i}:{j}">{value}<' in page
    assert f'data-value="{report.metrics["balanced_accuracy"]!r}"' in page and "lymphocyte" in page


def test_the_trials_val_sensitivity_and_specificity_are_the_per_class_means():
    """What a multi-class sweep's leaderboard shows as val_sensitivity/val_specificity: each class
    against the rest, averaged (for two classes they stay the positive class's)."""
    from medtune.trainables.metrics import classification_metrics

    probs, labels = _probs()
    trial = classification_metrics(probs, labels)
    per_class = build_multiclass_report("m", probs, labels, NAMES, samples=SAMPLES).per_class
    assert trial["sensitivity"] == pytest.approx(np.mean([v["sensitivity"] for v in per_class.values()]))
    assert trial["specificity"] == pytest.approx(np.mean([v["specificity"] for v in per_class.values()]))
    assert trial["sensitivity"] == pytest.approx(trial["balanced_acc"])
