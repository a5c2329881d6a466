"""``medtune final`` on graded classes: test kappa and grade error with 95% bootstrap intervals in
report.json, report.md, report.html and the MLflow metrics, built without training from fake
members (as ``test_report_html.py`` builds its folder)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

import medtune.trainables.multiclass_report as multiclass_report
from medtune.trainables.multiclass_report import build_multiclass_report, multiclass_markdown

GRADES = ("0", "1", "2", "3", "4")
SAMPLES = 100  # bootstrap resamples: enough for the intervals these tests check


def _graded_probs(labels: np.ndarray, miss: int, rng: np.random.Generator) -> np.ndarray:
    """Probabilities whose most probable grade is the true one for 60% of images and ``miss`` grades
    off (towards the middle of the scale) for the rest."""
    predicted = labels.copy()
    wrong = rng.random(len(labels)) < 0.4
    predicted[wrong] = np.where(labels[wrong] >= 2, labels[wrong] - miss, labels[wrong] + miss)
    predicted = np.clip(predicted, 0, len(GRADES) - 1)
    probs = rng.random((len(labels), len(GRADES))) * 0.2
    probs[np.arange(len(labels)), predicted] += 1.0
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture
def few_resamples(monkeypatch):
    real = multiclass_report.percentile_bootstrap
    monkeypatch.setattr(multiclass_report, "percentile_bootstrap",
                        lambda metrics, n, samples, seed, level: real(metrics, n, SAMPLES, seed, level))


def test_an_ordinal_report_adds_kappa_and_grade_error_with_intervals():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(GRADES), 300)
    near = build_multiclass_report("near", _graded_probs(labels, 1, rng), labels, GRADES, samples=SAMPLES,
                                   ordinal=True)
    far = build_multiclass_report("far", _graded_probs(labels, 3, rng), labels, GRADES, samples=SAMPLES,
                                  ordinal=True)
    predicted = np.array(near.confusion).sum()  # every test image counted once
    assert predicted == 300 and near.task == "ordinal"
    assert list(near.metrics) == ["accuracy", "balanced_accuracy", "roc_auc", "qwk", "mae"]
    for m, (low, high) in near.intervals.items():
        assert low <= near.metrics[m] <= high, m
    # accuracy is about the same; the distance of the misses tells the two apart
    assert abs(near.metrics["accuracy"] - far.metrics["accuracy"]) < 0.1
    assert near.metrics["qwk"] > far.intervals["qwk"][1] and near.metrics["mae"] < far.intervals["mae"][0]
    plain = build_multiclass_report("plain", _graded_probs(labels, 1, rng), labels, GRADES, samples=SAMPLES)
    assert "qwk" not in plain.metrics and plain.to_dict()["task"] == "classification"


def test_report_json_md_html_and_mlflow_metrics_carry_the_same_kappa(tmp_path, few_resamples):
    from medtune.search.results.final_artifacts import write_artifacts, write_report_page
    from medtune.search.results.final_members import FinalMember
    from medtune.search.results.final_reports import build_reports, report_markdown
    from medtune.search.tracking.final_run import report_metrics

    rng = np.random.default_rng(1)
    train_labels, test_labels = np.arange(500) % len(GRADES), rng.integers(0, len(GRADES), 200)
    members = [FinalMember(config={"architecture": "simple_cnn", "class_weighted": True, "lr": 10.0 ** -(3 + i)},
                           model=None, val_scores=np.zeros((0, len(GRADES))),
                           test_scores=_graded_probs(test_labels, 1 + i, rng)) for i in range(2)]
    spec = SimpleNamespace(name="grades", provenance={"sweep": "graded-sweep", "trial_id": "t0001"},
                           search=SimpleNamespace(scheduler=SimpleNamespace(unit="epochs"), cv=None))
    data = SimpleNamespace(train=SimpleNamespace(labels=train_labels), test=SimpleNamespace(labels=test_labels),
                           class_names=GRADES)
    reports, source = build_reports(members, data, "auto", "none", ordinal=True)
    out = tmp_path / "final"
    out.mkdir()
    write_artifacts(out, spec, members, reports, data, n_epochs=2, train_seconds=1.0, threshold_source=source)
    write_report_page(out, "Final test report: grades")

    best = json.loads((out / "report.json").read_text())["reports"][0]
    predicted = members[0].test_scores.argmax(axis=1)  # balanced point of a class-weighted model: the argmax
    qwk = cohen_kappa_score(test_labels, predicted, weights="quadratic", labels=list(range(len(GRADES))))
    assert best["task"] == "ordinal"
    assert best["metrics"]["qwk"]["value"] == pytest.approx(qwk)
    assert best["metrics"]["mae"]["value"] == pytest.approx(np.abs(predicted - test_labels).mean())
    low, high = best["metrics"]["qwk"]["ci95"]
    assert low <= qwk <= high
    assert {"qwk", "mae"} <= set(best["by_rule"]["prior"])

    markdown = (out / "report.md").read_text()
    assert re.search(rf"\| qwk \| {qwk:.3f} \(", markdown) and "| mae |" in markdown
    assert "mean absolute grade error" in markdown and "| qwk |" in report_markdown(reports, "printed")
    page = (out / "report.html").read_text()
    assert f'data-metric="0:qwk" data-value="{best["metrics"]["qwk"]["value"]!r}"' in page
    assert 'data-metric="1:mae"' in page and "Cohen&#x27;s kappa with quadratic weights" in page

    metrics = report_metrics(reports)
    assert metrics["test_qwk"] == pytest.approx(qwk) and metrics["test_qwk_ci_low"] == pytest.approx(low)
    assert {"test_mae", "test_mae_ci_high", "ensemble_test_qwk", "ensemble_test_mae"} <= set(metrics)


def test_markdown_of_a_classification_report_is_unchanged_by_the_ordinal_columns():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 90)
    probs = _graded_probs(labels, 1, rng)[:, :3]
    report = build_multiclass_report("m", probs / probs.sum(1, keepdims=True), labels, GRADES[:3], samples=20,
                                     rule="prior", priors=np.full(3, 1 / 3))
    text = multiclass_markdown([report], "t")
    assert "qwk" not in text and "| operating point | accuracy | balanced_accuracy |" in text


def test_the_leaderboard_shows_kappa_and_grade_error_for_ordinal_sweeps_only():
    from medtune.search.results.leaderboard import LeaderboardEntry, format_leaderboard, leaderboard_table
    from medtune.search.spec.sweep_spec import validate_spec

    def spec(task: str, metric: str):
        return validate_spec({"name": "t", "data": {"source": "x.npz", "task": task}, "metric": {"name": metric},
                              "space": {"lr": {"loguniform": [1e-4, 1e-2]}}})

    entry = LeaderboardEntry("t1", {"lr": 1e-3}, 0.8, 2, 3, {"val_auc": 0.9, "val_qwk": 0.8, "val_mae": 0.4})
    header, rows = leaderboard_table([entry], spec("ordinal", "val_qwk"))
    assert header[3] == "best_val_qwk" and {"val_qwk", "val_mae"} <= set(header)
    assert rows[0][header.index("val_mae")] == 0.4
    assert "val_qwk" in format_leaderboard([entry], spec("ordinal", "val_qwk")).splitlines()[1]
    plain, _ = leaderboard_table([entry], spec("auto", "val_auc"))
    assert "val_qwk" not in plain and "val_mae" not in plain  # no column its trials never fill
