"""``medtune final`` on a task with more than two classes, end to end (no Ray: final trains alone)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import medtune
from medtune.search.spec.sweep_spec import SpecError

CLASSES = 3


@pytest.fixture(scope="module")
def three_class_npz(tmp_path_factory):
    """28 px noise with a bright bar whose row says the class: learnable in a couple of epochs."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 240), ("val", 90), ("test", 90)):
        labels = np.arange(n) % CLASSES
        images = rng.integers(0, 80, (n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 3 + 8 * label: 9 + 8 * label, 4:24] += 150
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.uint8)
    path = tmp_path_factory.mktemp("data") / "bars.npz"
    np.savez_compressed(path, **arrays)
    return path


def _space(source, root, **mlflow):
    return {"name": "bars", "data": {"source": str(source), "image_size": 28},
            "search": {"scheduler": {"name": "fifo", "unit": "epochs", "max_t": 3}, "num_samples": 1},
            "space": {}, "fixed": {"architecture": "simple_cnn", "pretrained": "none", "lr": 0.003, "batch_size": 32},
            "mlflow": mlflow or {"enabled": False}, "storage": str(root / "ray")}


@pytest.fixture(scope="module")
def final(three_class_npz, tmp_path_factory):
    """One real final run, an ensemble of two (the best model's numbers come first)."""
    root = tmp_path_factory.mktemp("final")
    uri = f"sqlite:///{root}/mlruns.db"
    space = _space(three_class_npz, root, tracking_uri=uri, experiment="bars")
    space["provenance"] = {"top_configs": [{}, {"lr": 0.001}]}  # as `medtune best --top 2` writes it
    outcome = medtune.final(space, out=root / "out", ensemble=2)
    return outcome, uri


@pytest.mark.slow  # trains the final models
def test_the_report_is_multi_class_with_intervals_per_class_rates_and_a_k_by_k_matrix(final):
    outcome, _ = final
    report = json.loads((outcome.out_dir / "report.json").read_text())
    best = report["reports"][0]
    assert best["kind"] == "multiclass" and best["class_names"] == ["0", "1", "2"]
    assert set(best["metrics"]) == {"accuracy", "balanced_accuracy", "roc_auc"}
    for name, entry in best["metrics"].items():
        low, high = entry["ci95"]
        assert low <= entry["value"] <= high, name
    assert best["metrics"]["roc_auc"]["value"] > 0.9  # the bars are easy: the model learnt them
    matrix = np.array(best["confusion_matrix"])
    assert matrix.shape == (CLASSES, CLASSES) and matrix.sum() == 90 and (matrix.sum(axis=1) == 30).all()
    assert set(best["per_class"]) == {"0", "1", "2"}
    # auto: the balanced operating point (a class-weighted model's argmax); both points' numbers are shown
    assert best["threshold_rule"] == "balanced" and set(best["by_rule"]) == {"balanced", "prior"}
    assert best["class_weighted"] is True and best["class_priors"] == pytest.approx([1 / 3] * 3)
    assert report["threshold_source"].endswith("rule auto: balanced")
    assert "calibration" not in report  # a reliability diagram of one class's probability would mislead here
    # no threshold to choose, so nothing is held out: every image of train (240) and val (90) trains
    assert report["train_images"] == 240 + 90 and report["calibration_images"] is None
    text = (outcome.out_dir / "report.md").read_text()
    assert "balanced_accuracy" in text and "per class (one vs rest)" in text
    for name in ("roc_curve.png", "confusion_matrix.png", "gradcam.png", "report.html"):
        assert (outcome.out_dir / name).stat().st_size > 0, name


@pytest.mark.slow  # trains the final models
def test_predictions_hold_every_class_probability(final):
    outcome, _ = final
    with open(outcome.out_dir / "test_predictions.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["label", "best_model_0", "best_model_1", "best_model_2"]
    probs = np.array([[float(v) for v in row[1:4]] for row in rows[1:]])
    assert len(rows) == 91 and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    matrix = np.zeros((CLASSES, CLASSES), int)
    np.add.at(matrix, ([int(r[0]) for r in rows[1:]], probs.argmax(axis=1)), 1)
    assert matrix.tolist() == \
        json.loads((outcome.out_dir / "report.json").read_text())["reports"][0]["confusion_matrix"]


@pytest.mark.slow  # trains the final models
def test_mlflow_gets_the_headline_and_per_class_metrics(final):
    from mlflow import MlflowClient

    outcome, uri = final
    run = MlflowClient(tracking_uri=uri).get_run(outcome.run_id)
    metrics = run.data.metrics
    assert metrics["test_balanced_accuracy"] == pytest.approx(outcome.metrics()["balanced_accuracy"][0])
    assert {"test_sensitivity_0", "test_specificity_2", "test_roc_auc_1"} <= set(metrics)
    assert "test_threshold" not in metrics
    assert run.data.tags["medtune.operating_point"] == "balanced"
    import mlflow

    mlflow.set_tracking_uri(uri)
    point = mlflow.models.get_model_info(outcome.model_uri).metadata["medtune_operating_point"]
    assert point["rule"] == "balanced" and point["log_probability_offsets"] is None  # the plain argmax
    assert point["class_priors"] == pytest.approx([1 / 3] * 3)
    assert (outcome.tracking_uri, outcome.experiment_id) == (uri, run.info.experiment_id)
    assert outcome.sweep_link is None  # no sweep: the space names no parent run


def test_a_threshold_rule_on_a_multi_class_task_is_refused_before_training(three_class_npz, tmp_path):
    with pytest.raises(SpecError, match="applies to two-class tasks; this one has 3 classes"):
        medtune.final(_space(three_class_npz, tmp_path), out=tmp_path / "out", threshold="0.5")


@pytest.mark.slow  # trains the final models
def test_an_ensemble_averages_the_members_class_probabilities(final):
    outcome, _ = final
    report = json.loads((outcome.out_dir / "report.json").read_text())
    assert [r["name"] for r in report["reports"]] == ["best model", "ensemble of 2"]
    with open(outcome.out_dir / "test_predictions.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == [f"{who}_{k}" for who in ("best_model", "member1") for k in range(CLASSES)]
    members = np.array([[float(v) for v in row[1:]] for row in rows[1:]]).reshape(-1, 2, CLASSES)
    mean = members.mean(axis=1)
    matrix = np.zeros((CLASSES, CLASSES), int)
    np.add.at(matrix, ([int(r[0]) for r in rows[1:]], mean.argmax(axis=1)), 1)
    assert matrix.tolist() == report["reports"][1]["confusion_matrix"]  # the ensemble predicts from the mean


@pytest.mark.slow  # trains the final models
def test_predict_gives_the_final_runs_class_probabilities_and_its_operating_point(final, three_class_npz):
    """The bundle in ``model/`` predicts the test split as the report did (``docs/predict.md``)."""
    outcome, _ = final
    with open(outcome.out_dir / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    expected = np.array([[float(r[f"best_model_{k}"]) for k in range(CLASSES)] for r in rows])
    predicted = medtune.predict(outcome.out_dir, three_class_npz)
    frame = predicted.frame()
    assert np.allclose(frame[[f"prob_{k}" for k in range(CLASSES)]].to_numpy(), expected, atol=1e-5)
    assert predicted.rule == "balanced" and predicted.threshold is None and "score" not in frame
    assert frame["predicted_class"].tolist() == [str(k) for k in expected.argmax(axis=1)]  # a weighted model's argmax
    prior = medtune.predict(outcome.out_dir, three_class_npz, operating_point="prior").frame()
    assert len(prior) == 90 and set(prior["predicted_class"]) <= {"0", "1", "2"}
    with pytest.raises(SpecError, match="--threshold: --threshold 0.5: a threshold applies to two-class models"):
        medtune.predict(outcome.out_dir, three_class_npz, threshold=0.5)
