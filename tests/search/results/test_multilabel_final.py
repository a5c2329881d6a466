"""``medtune final`` on multi-label findings, end to end (no Ray: final trains alone): a held-out half
of val chooses each finding's threshold, the report, the bundle and the MLflow run carry them."""

from __future__ import annotations

import json

import pytest
from helpers import make_multilabel_npz

import medtune


@pytest.mark.slow  # trains the final model
def test_final_on_findings_reports_each_finding_and_logs_to_mlflow(tmp_path):
    source = make_multilabel_npz(tmp_path / "marks.npz", n=(160, 64, 48))
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    space = {"name": "marks", "data": {"source": str(source), "image_size": 28},
             "search": {"scheduler": {"name": "fifo", "unit": "epochs", "max_t": 3}, "num_samples": 1},
             "space": {}, "fixed": {"architecture": "simple_cnn", "pretrained": "none", "lr": 0.003, "batch_size": 32},
             "mlflow": {"tracking_uri": uri, "experiment": "marks"}, "storage": str(tmp_path / "ray")}
    outcome = medtune.final(space, out=tmp_path / "out")
    report = json.loads((outcome.out_dir / "report.json").read_text())
    best = report["reports"][0]
    assert report["task"] == "multilabel" and best["kind"] == "multilabel"
    assert best["class_names"] == ["label_0", "label_1", "label_2"]
    assert best["metrics"]["auc_macro"]["value"] > 0.8  # bright marks: learnt in three epochs
    assert set(best["thresholds"]) == {"label_0", "label_1", "label_2"}
    assert report["calibration_images"] == 32 and report["train_images"] == 160 + 32  # half of val held out
    for name in ("roc_curve.png", "gradcam.png", "report.html", "report.md", "test_predictions.csv"):
        assert (outcome.out_dir / name).stat().st_size > 0, name
    bundle = json.loads((outcome.out_dir / "model" / "medtune_model.json").read_text())
    assert bundle["operating_point"]["multilabel"] is True and set(bundle["operating_point"]["thresholds"]) == {
        "label_0", "label_1", "label_2"}

    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(outcome.run_id)
    assert {"test_auc_macro", "test_auc_micro", "test_auc_label_0", "test_threshold_label_2"} <= set(run.data.metrics)
    assert outcome.model_uri is not None  # the MLflow model (a pyfunc over the bundle) was logged

    predicted = medtune.predict(outcome.out_dir, source, out=tmp_path / "predictions.csv",
                                gradcam=tmp_path / "heatmaps")
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"label", "prob_label_0", "threshold_label_1", "decision_label_2", "findings"} <= set(header)
    assert lines[1].split(",")[header.index("label")].count(";") == 2  # the image's three 0/1 findings
    assert len(predicted.predictions) == 48 and predicted.gradcam_dir is not None
