"""Ordinal grades (``data.task: ordinal``): kappa and grade error by hand, the task's checks, and a
trial that reports ``val_qwk`` and ``val_mae``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medtune.trainables.data.errors import DataSettingError
from medtune.trainables.data.task import check_task, grade_order
from medtune.trainables.objective import (
    ORDINAL_METRICS,
    REPORTED_METRICS,
    objective_task_problem,
    printed_metrics,
    reported_by,
    shown_metrics,
)
from medtune.trainables.ordinal import grade_confusion, grade_metrics, ordinal_metrics

GRADES = 5


def _one_hot(predicted: list[int], classes: int = GRADES) -> np.ndarray:
    return np.eye(classes)[predicted]


def test_a_perfect_grader_has_kappa_one_and_no_grade_error():
    labels = np.arange(GRADES).repeat(4)
    assert ordinal_metrics(_one_hot(list(labels)), labels) == {"qwk": 1.0, "mae": 0.0}


def test_off_by_one_and_off_by_four_by_hand():
    """Grades 0 and 4, each read one grade in (0->1, 4->3) or as the other end (0->4, 4->0): accuracy
    is 0 either way, while the grade error is 1 against 4 and the kappa 0.8 against -1.

    Off by one: observed weighted disagreement 4 x 1^2 = 4; chance expects each true row (2 images)
    spread over the predicted columns 1 and 3 (2 each), one image per cell: 1 + 9 + 9 + 1 = 20, so
    kappa = 1 - 4/20 = 0.8. Off by four: observed 4 x 4^2 = 64 against chance 16 + 0 + 0 + 16 = 32,
    kappa = 1 - 64/32 = -1 (worse than chance)."""
    labels = np.array([0, 0, 4, 4])
    near, far = _one_hot([1, 1, 3, 3]), _one_hot([4, 4, 0, 0])
    assert (near.argmax(1) == labels).mean() == (far.argmax(1) == labels).mean() == 0.0  # accuracy cannot tell
    assert ordinal_metrics(near, labels, prefix="val_") == pytest.approx({"val_qwk": 0.8, "val_mae": 1.0})
    assert ordinal_metrics(far, labels, prefix="val_") == pytest.approx({"val_qwk": -1.0, "val_mae": 4.0})


def test_kappa_is_scikit_learns_quadratic_kappa_and_mae_the_mean_grade_distance():
    rng = np.random.default_rng(0)
    for classes in (3, 5, 7):
        labels = rng.integers(0, classes, 400)
        predicted = np.clip(labels + rng.integers(-2, 3, 400), 0, classes - 1)
        m = grade_metrics(grade_confusion(predicted, labels, classes))
        assert m["qwk"] == pytest.approx(cohen_kappa_score(labels, predicted, weights="quadratic",
                                                           labels=list(range(classes))))
        assert m["mae"] == pytest.approx(np.abs(predicted - labels).mean())


def test_the_metrics_are_of_the_most_probable_grade_and_undefined_without_spread():
    probs = np.array([[0.5, 0.1, 0.4], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])  # expected grades 0.9, 1.3, 1.2
    assert ordinal_metrics(probs, np.array([0, 2, 1]))["mae"] == 0.0  # the argmax is right every time
    same = ordinal_metrics(_one_hot([2, 2], 3), np.array([2, 2]))
    assert math.isnan(same["qwk"]) and same["mae"] == 0.0  # one grade everywhere: kappa undefined, as sklearn


def test_the_task_check_refuses_two_grades_and_a_scrambled_scale():
    check_task(("a", "b"), "auto", "x")  # not ordinal: nothing to check
    check_task(("0", "1", "2"), "ordinal", "x")
    check_task(("0_none", "1_mild", "2_severe"), "ordinal", "x")
    with pytest.raises(DataSettingError, match="data.task: ordinal needs at least 3 graded classes") as two:
        check_task(("normal", "pneumonia"), "ordinal", "x")
    assert two.value.setting == "task"
    with pytest.raises(DataSettingError, match="not their numeric order") as scrambled:
        check_task(("1", "10", "2"), "ordinal", "x")  # folders sort by name
    assert scrambled.value.setting == "task"
    assert grade_order(("0", "1", "2")) == "0 < 1 < 2"


def test_a_folder_whose_names_sort_apart_from_their_numbers_is_refused_before_decoding(tmp_path):
    from helpers import make_kermany

    from medtune.trainables.data import DataConfig, inspect_source

    root = make_kermany(tmp_path / "knees", per_class=2, classes=("1", "2", "10"))
    with pytest.raises(DataSettingError, match="1 < 10 < 2"):
        inspect_source(DataConfig(source=str(root), task="ordinal"))
    assert inspect_source(DataConfig(source=str(root)))["class_names"] == ["1", "10", "2"]  # auto: unordered


def test_the_ordinal_metrics_are_objectives_of_ordinal_tasks_only():
    assert REPORTED_METRICS["val_qwk"] == "max" and REPORTED_METRICS["val_mae"] == "min"
    assert set(ORDINAL_METRICS) == {"val_qwk", "val_mae"}
    assert "val_qwk" in reported_by("ordinal") and "val_qwk" not in reported_by("auto")
    assert objective_task_problem("val_qwk", "ordinal") is None and objective_task_problem("val_auc", "auto") is None
    assert "data.task" in objective_task_problem("val_qwk", "classification")
    assert "val_qwk" in shown_metrics("ordinal") and "val_qwk" not in shown_metrics("auto")
    assert "val_qwk" in printed_metrics("ordinal") and "val_qwk" not in printed_metrics(None)


# --- a trial on graded data -------------------------------------------------------------------


def _graded_npz(path, classes: int = GRADES) -> str:
    """28 px noise with a bright bar whose row is the grade: learnable in an epoch or two."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 150), ("val", 50), ("test", 25)):
        labels = np.arange(n) % classes
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 5 * label: 6 + 5 * label, 4:24] += 150
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return str(path)


def _trial(source: str, task: str) -> dict:
    return {"architecture": "simple_cnn", "data_source": source, "data_task": task, "image_size": 28,
            "batch_size": 32, "lr": 3e-3, "epochs": 1, "seed": 0}


def test_a_trial_on_grades_reports_kappa_and_grade_error(tmp_path):
    from medtune.trainables.reporters import LocalReporter
    from medtune.trainables.train import run_training

    source = _graded_npz(tmp_path / "grades.npz")
    reporter = LocalReporter(tmp_path / "ordinal", metric="val_qwk", mode="max", num_threads=1)
    run_training(_trial(source, "ordinal"), reporter)
    metrics = reporter.history[-1]
    for name in reported_by("ordinal"):
        assert name in metrics and math.isfinite(metrics[name]), name
    assert -1.0 <= metrics["val_qwk"] <= 1.0 and 0.0 <= metrics["val_mae"] <= GRADES - 1
    assert reporter.best is not None and reporter.best["val_qwk"] == metrics["val_qwk"]  # the objective it keeps by
    plain = LocalReporter(tmp_path / "auto", num_threads=1)
    run_training(_trial(source, "auto"), plain)
    assert not set(ORDINAL_METRICS) & set(plain.history[-1])  # unordered classes: no kappa


def test_a_trial_refuses_ordinal_on_two_classes_before_training(tmp_path):
    from medtune.trainables.reporters import LocalReporter
    from medtune.trainables.train import run_training

    source = _graded_npz(tmp_path / "two.npz", classes=2)
    with pytest.raises(DataSettingError, match="needs at least 3 graded classes"):
        run_training(_trial(source, "ordinal"), LocalReporter(tmp_path / "run", num_threads=1))
