"""``medtune final`` on multi-label findings: per-finding thresholds, AUC, sensitivity and specificity
with intervals, the macro and micro AUC, in report.json, report.md, report.html, the MLflow metrics,
the bundle's operating point and a Grad-CAM per finding; built from fake members (no training)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import medtune.trainables.multilabel_report as multilabel_report
from medtune.trainables.multilabel_report import build_multilabel_report

FINDINGS = ("effusion", "mass", "hernia")
SAMPLES = 60


@pytest.fixture(autouse=True)
def few_resamples(monkeypatch):
    real = multilabel_report.percentile_bootstrap
    monkeypatch.setattr(multilabel_report, "percentile_bootstrap",
                        lambda metrics, n, samples, seed, level: real(metrics, n, SAMPLES, seed, level))
    real_intervals = multilabel_report.bootstrap_intervals
    monkeypatch.setattr(multilabel_report, "bootstrap_intervals",
                        lambda s, y, t, samples, seed: real_intervals(s, y, t, samples=SAMPLES, seed=seed))


def _findings(n: int, rng: np.random.Generator, hernia: bool = True) -> tuple[np.ndarray, np.ndarray]:
    labels = (rng.random((n, 3)) < [0.4, 0.25, 0.1]).astype(np.int64)
    if not hernia:
        labels[:, 2] = 0
    scores = np.clip(0.45 * labels + 0.6 * rng.random((n, 3)), 0, 1)
    return scores, labels


def test_each_finding_gets_its_threshold_and_intervals_and_an_unscorable_one_is_named():
    rng = np.random.default_rng(0)
    val_scores, val_labels = _findings(200, rng)
    test_scores, test_labels = _findings(300, rng, hernia=False)  # no hernia on test
    report = build_multilabel_report("best model", val_scores, val_labels, test_scores, test_labels, FINDINGS,
                                     threshold_rule="youden", train_labels=val_labels)
    assert set(report.per_finding) == {"effusion", "mass"} and set(report.skipped) == {"hernia"}
    assert "test image" in report.skipped["hernia"]
    auc = roc_auc_score(test_labels[:, 0], test_scores[:, 0])
    assert report.metrics["auc_effusion"] == pytest.approx(auc)
    assert report.metrics["auc_macro"] == pytest.approx(np.mean([auc, roc_auc_score(test_labels[:, 1],
                                                                                    test_scores[:, 1])]))
    for name, (low, high) in report.intervals.items():
        assert low <= report.metrics[name] <= high, name
    t = report.thresholds["mass"]
    sensitivity = (test_scores[test_labels[:, 1] == 1, 1] >= t).mean()
    assert report.per_finding["mass"]["sensitivity"]["value"] == pytest.approx(sensitivity)
    assert report.threshold_rule == "youden" and not any(np.isnan(v) for v in report.metrics.values())


@pytest.mark.slow  # writes every artifact of a report
def test_report_json_md_html_mlflow_bundle_and_gradcam(tmp_path):
    from medtune.search.results.final_artifacts import write_artifacts, write_report_page
    from medtune.search.results.final_bundle import bundle_operating_point
    from medtune.search.results.final_gradcam import gradcam_figure
    from medtune.search.results.final_members import FinalMember
    from medtune.search.results.final_reports import build_reports, check_threshold_applies
    from medtune.search.tracking.final_run import model_metadata, operating_point_tags, report_metrics
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.factories import build_trial_model

    rng = np.random.default_rng(1)
    val_scores, val_labels = _findings(150, rng)
    test_scores, test_labels = _findings(120, rng)
    config = {"architecture": "simple_cnn", "class_weighted": True, "image_size": 28, "lr": 1e-3, "seed": 0,
              "data_source": "x.npz"}
    model = build_trial_model(TrialConfig.from_dict(config), len(FINDINGS)).eval()
    members = [FinalMember(config=config, model=model, val_scores=val_scores, val_labels=val_labels,
                           test_scores=np.clip(test_scores + 0.05 * i, 0, 1)) for i in range(2)]
    spec = SimpleNamespace(name="findings", provenance={"sweep": "s"},
                           search=SimpleNamespace(scheduler=SimpleNamespace(unit="epochs"), cv=None))
    images = rng.integers(0, 255, (120, 28, 28, 1)).astype(np.uint8)
    data = SimpleNamespace(train=SimpleNamespace(labels=val_labels), test=SimpleNamespace(labels=test_labels,
                                                                                          images=images),
                           class_names=FINDINGS, multilabel=True, colour=False)
    check_threshold_applies("sensitivity:0.9", FINDINGS, "x.yaml", multilabel=True)  # a two-class rule applies
    reports, source = build_reports(members, data, "auto", "held-out 0.5 of val (150 images)")
    assert "rule auto" in source and reports[1].name == "ensemble of 2"
    out = tmp_path / "final"
    out.mkdir()
    write_artifacts(out, spec, members, reports, data, n_epochs=2, train_seconds=1.0, threshold_source=source)
    gradcam_figure(members[0], reports[0].threshold, data, out / "gradcam.png", per_group=2,
                   thresholds=reports[0].thresholds)
    write_report_page(out, "Final test report: findings")

    summary = json.loads((out / "report.json").read_text())
    best = summary["reports"][0]
    assert summary["task"] == "multilabel" and best["kind"] == "multilabel"
    assert set(best["metrics"]) == {"auc_macro", "auc_micro"}
    assert best["metrics"]["auc_macro"]["value"] == pytest.approx(reports[0].metrics["auc_macro"])
    assert set(best["thresholds"]) == set(FINDINGS) and "sensitivity" in best["per_finding"]["hernia"]
    markdown = (out / "report.md").read_text()
    assert "| auc_macro |" in markdown and "| hernia |" in markdown
    header = (out / "test_predictions.csv").read_text().splitlines()[0]
    assert header.startswith("label_effusion,label_mass,label_hernia,best_model_effusion")
    page = (out / "report.html").read_text()
    assert "Per finding, each at its own threshold" in page and 'data-metric="0:auc_micro"' in page
    assert (out / "roc_curve.png").is_file() and (out / "gradcam.png").is_file()

    metrics = report_metrics(reports)
    assert metrics["test_auc_macro"] == pytest.approx(reports[0].metrics["auc_macro"])
    assert {"test_auc_micro", "test_auc_effusion", "test_sensitivity_mass_ci_low", "test_specificity_hernia",
            "test_threshold_hernia", "ensemble_test_auc_macro"} <= set(metrics)
    point = bundle_operating_point(reports[0])
    assert point["multilabel"] and set(point["thresholds"]) == set(FINDINGS)
    assert model_metadata(reports[0], FINDINGS)["medtune_operating_point"]["multilabel"]
    assert "medtune.thresholds" in operating_point_tags(reports[0])
