"""Multi-label findings in a trial: pos_weight, the metrics (a macro AUC that names and skips a
finding val cannot score), the sigmoid head's loss, and a trial that learns three findings."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from helpers import make_multilabel_npz
from sklearn.metrics import roc_auc_score

from medtune.trainables.metrics import classification_metrics
from medtune.trainables.multilabel import (
    MAX_POS_WEIGHT,
    absent_findings,
    label_aucs,
    macro_auc,
    metric_safe,
    micro_auc,
    multilabel_metrics,
    pos_weight,
)
from medtune.trainables.multilabel_loss import MultiLabelBCE, multilabel_criterion
from medtune.trainables.objective import LOGGED_METRICS, is_finding_metric

NAMES = ("effusion", "mass", "pleural thickening")


def _scores(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 3)) < 0.3).astype(np.int64)
    probs = np.clip(0.6 * labels + rng.random((n, 3)) * 0.5, 0, 1)
    return probs, labels


def test_pos_weight_is_negatives_per_positive_clipped():
    labels = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]] * 50)  # 50 of 200, none, 150 of 200
    assert pos_weight(labels) == pytest.approx([3.0, MAX_POS_WEIGHT, 1 / 3])
    assert pos_weight(np.array([[1], [0]] + [[0]] * 1000)) == pytest.approx([MAX_POS_WEIGHT])


def test_macro_auc_is_the_mean_of_each_findings_auc_and_micro_pools_them():
    probs, labels = _scores()
    each = [roc_auc_score(labels[:, j], probs[:, j]) for j in range(3)]
    assert macro_auc(probs, labels) == pytest.approx(np.mean(each))
    assert micro_auc(probs, labels) == pytest.approx(roc_auc_score(labels.ravel(), probs.ravel()))
    m = classification_metrics(probs, labels, prefix="val_")  # dispatched on the labels' shape
    assert m == multilabel_metrics(probs, labels, prefix="val_")
    assert set(m) == {"val_loss", "val_acc", "val_auc", "val_sensitivity", "val_specificity", "val_balanced_acc"}
    assert m["val_auc"] == pytest.approx(np.mean(each))
    assert m["val_acc"] == pytest.approx(((probs >= 0.5) == labels).mean())


def test_a_finding_absent_from_val_is_named_and_skipped_not_nan():
    probs, labels = _scores()
    labels[:, 1] = 0  # no mass in val
    assert absent_findings(labels, NAMES) == ("mass",)
    auc = multilabel_metrics(probs, labels)["auc"]
    assert math.isfinite(auc) and auc == pytest.approx(np.mean([roc_auc_score(labels[:, j], probs[:, j])
                                                                for j in (0, 2)]))
    per = label_aucs(probs, labels, NAMES)
    assert set(per) == {"val_auc_effusion", "val_auc_pleural_thickening"}  # no NaN entry for mass
    assert all(is_finding_metric(k) for k in per) and not any(is_finding_metric(k) for k in LOGGED_METRICS)
    assert metric_safe("Pleural/Thickening (L)") == "Pleural_Thickening_L_"


def test_the_loss_casts_the_findings_weighs_positives_and_smooths():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    labels = torch.tensor([[1, 0], [0, 1]])
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    assert MultiLabelBCE()(logits, labels) == pytest.approx(float(plain))
    weighted = multilabel_criterion(np.array([[1, 0], [0, 0], [0, 1], [0, 0]]), True, 0.0, torch.device("cpu"))
    assert weighted.loss.pos_weight.tolist() == [3.0, 3.0]
    smoothed = MultiLabelBCE(label_smoothing=0.2)(logits, labels)
    target = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert smoothed == pytest.approx(float(torch.nn.functional.binary_cross_entropy_with_logits(logits, target)))


def _trial(source: str, **kw) -> dict:
    return {"architecture": "simple_cnn", "data_source": source, "image_size": 28, "batch_size": 32, "lr": 3e-3,
            "epochs": 2, "seed": 0, "class_weighted": True, **kw}


def test_a_trial_learns_three_findings_and_reports_each_ones_auc(tmp_path, caplog):
    from medtune.trainables.reporters import LocalReporter
    from medtune.trainables.train import run_training

    source = str(make_multilabel_npz(tmp_path / "marks.npz", n=(160, 48, 16)))
    reporter = LocalReporter(tmp_path / "run", num_threads=1)
    with caplog.at_level(logging.WARNING):
        run_training(_trial(source), reporter)
    metrics = reporter.history[-1]
    for name in ("val_loss", "val_auc", "val_acc", "val_sensitivity", "val_specificity"):
        assert math.isfinite(metrics[name]), name
    assert {"val_auc_label_0", "val_auc_label_1", "val_auc_label_2"} <= set(metrics)
    assert metrics["val_auc"] > 0.8  # three bright marks: learnt in two epochs
    assert not [r for r in caplog.records if "left out of val_auc" in r.getMessage()]


def test_a_cross_validated_trial_averages_each_finding_over_folds(tmp_path):
    from medtune.trainables.reporters import LocalReporter
    from medtune.trainables.train import run_training

    source = str(make_multilabel_npz(tmp_path / "marks.npz", n=(60, 30, 8)))
    reporter = LocalReporter(tmp_path / "cv", num_threads=1)
    outcome = run_training(_trial(source, epochs=1, cv_folds=3), reporter)
    metrics = reporter.history[-1]
    assert math.isfinite(metrics["val_auc"]) and "val_auc_sem" in metrics and "val_auc_label_0" in metrics
    assert outcome.oof_probs.shape == (90, 3) and outcome.oof_labels.shape == (90, 3)
    assert ((outcome.oof_probs >= 0) & (outcome.oof_probs <= 1)).all()


def test_a_finding_val_cannot_score_is_named_once_per_trial(tmp_path, caplog):
    from helpers import multilabel_arrays

    from medtune.trainables.reporters import LocalReporter
    from medtune.trainables.train import run_training

    arrays = multilabel_arrays(n=(64, 24, 8))
    arrays["val_labels"][:, 2] = 0  # no right mark in val
    np.savez_compressed(tmp_path / "gap.npz", **arrays)
    reporter = LocalReporter(tmp_path / "run", num_threads=1)
    with caplog.at_level(logging.WARNING):
        run_training(_trial(str(tmp_path / "gap.npz")), reporter)
    named = [r.getMessage() for r in caplog.records if "left out of val_auc" in r.getMessage()]
    assert len(named) == 1 and "label_2" in named[0]  # two epochs, one warning
    assert all(math.isfinite(m["val_auc"]) and "val_auc_label_2" not in m for m in reporter.history)
