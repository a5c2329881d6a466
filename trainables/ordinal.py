"""How far a predicted grade is from the true one: quadratic-weighted kappa and mean absolute grade error.

Accuracy and AUC treat classes as unordered: on a scale (diabetic retinopathy 0-4, knee
osteoarthritis KL 0-4) calling a grade-4 eye grade 0 costs them what calling it grade 3 does. A task
declared ordinal (``data.task: ordinal``; ``medtune.trainables.data.task``) therefore also reports

- ``qwk``: Cohen's kappa with quadratic weights, an error of d grades weighing d^2: 1 is perfect
  agreement, 0 what chance agreement at the same grade shares gives, below 0 worse than chance. The
  usual measure of agreement between graders, and what diabetic retinopathy grading is scored by.
- ``mae``: the mean absolute difference between the predicted and the true grade, in grades (lower
  is better): the same errors in a unit a reader can picture.

Both are of the *predicted* grade (the most probable one; in the final report, the grade its
operating point predicts), not of the expected grade sum_k k * p_k. The predicted grade is the one
accuracy, the confusion matrix and a reader of the report see, so every number describes the same
decision; an expected grade is a grade nobody is told, and it rewards hedging between far-apart
grades (half the probability on grade 0 and half on 4 is an expected 2, two grades off either way).

Both come from the K x K confusion matrix, the one the multi-class report counts. The kappa is
written in closed form rather than called as scikit-learn's ``cohen_kappa_score(weights="quadratic")``,
which it equals (the tests check it) but which validates its input on every call, about 1.6 ms: the
bootstrap intervals call it a thousand times per report. No torch here: the report recomputes these
from saved predictions.
"""

from __future__ import annotations

import math

import numpy as np


def grade_confusion(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """K x K counts (rows: true grade, columns: predicted grade)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def quadratic_weighted_kappa(matrix: np.ndarray) -> float:
    """Cohen's kappa with weights (i - j)^2 of a confusion matrix: 1 - observed / chance-expected
    weighted disagreement. NaN where chance predicts no disagreement (every image and every
    prediction of one grade), as scikit-learn gives."""
    observed = np.asarray(matrix, dtype=np.float64)
    n = observed.sum()
    if n == 0:
        return math.nan
    grades = np.arange(len(observed))
    weights = (grades[:, None] - grades[None, :]) ** 2
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    chance = float((weights * expected).sum())
    return 1.0 - float((weights * observed).sum()) / chance if chance > 0 else math.nan


def mean_absolute_grade_error(matrix: np.ndarray) -> float:
    """The mean of |predicted grade - true grade| over the images a confusion matrix counts."""
    counts = np.asarray(matrix, dtype=np.float64)
    n = counts.sum()
    grades = np.arange(len(counts))
    return float((np.abs(grades[:, None] - grades[None, :]) * counts).sum() / n) if n else math.nan


def grade_metrics(matrix: np.ndarray) -> dict[str, float]:
    """``qwk`` and ``mae`` of a confusion matrix of grades."""
    return {"qwk": quadratic_weighted_kappa(matrix), "mae": mean_absolute_grade_error(matrix)}


def ordinal_metrics(probs: np.ndarray, labels: np.ndarray, prefix: str = "") -> dict[str, float]:
    """``qwk`` and ``mae`` of the most probable grade of each image (what a trial reports as
    ``val_qwk`` and ``val_mae`` with ``prefix="val_"``)."""
    matrix = grade_confusion(np.asarray(probs).argmax(axis=1), labels, probs.shape[1])
    return {f"{prefix}{k}": v for k, v in grade_metrics(matrix).items()}
