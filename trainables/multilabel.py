"""Metrics of multi-label findings (``data.task: multilabel``): each image has any number of L 0/1
findings, and the model scores each finding on its own (a sigmoid per output, not a softmax).

``val_auc``, the objective, is the macro AUC over the findings: the mean of each finding's own
ROC AUC (that finding against its absence). A finding with no positive, or no negative, image in
val has no AUC; it is left out of the mean and *named* (``absent_findings``), never reported as
NaN, because one NaN would make the objective, and so every trial on a small val split, NaN. The
other numbers are per finding at a 0.5 threshold, averaged over findings: ``acc`` (the share of
image-finding decisions that are right), ``sensitivity``, ``specificity`` and ``balanced_acc``
(their mean). ``loss`` is the unweighted binary cross-entropy per image and finding, the proper
scoring rule that ``val_loss`` is for the other tasks. Each finding's AUC is also reported under
its own name (``label_aucs``: ``val_auc_<finding>``).

No torch here, as in ``metrics.py``: the final report recomputes these from saved predictions.
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.metrics import roc_auc_score

#: The largest ``pos_weight`` of a finding (negatives per positive): a finding seen in 1 of 10,000
#: training images would otherwise weigh 10,000 times and its few images would swamp every batch.
MAX_POS_WEIGHT = 100.0


def pos_weight(labels: np.ndarray, max_weight: float = MAX_POS_WEIGHT) -> np.ndarray:
    """Each finding's negatives per positive in ``labels`` (N, L), clipped to ``max_weight`` (a finding
    with no positive gets the maximum): what ``class_weighted`` means for a sigmoid head, replacing
    the class weights of a softmax one, so a rare finding is not learnt as "always absent"."""
    labels = np.asarray(labels, dtype=np.float64)
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    return np.clip(negatives / np.maximum(positives, 1e-12), 1.0 / max_weight, max_weight)


def present(labels: np.ndarray) -> np.ndarray:
    """Which findings have both a positive and a negative image (an AUC needs both)."""
    labels = np.asarray(labels)
    return (labels.max(axis=0, initial=0) > 0) & (labels.min(axis=0, initial=1) < 1)


def absent_findings(labels: np.ndarray, names: tuple[str, ...]) -> tuple[str, ...]:
    """The findings ``labels`` cannot score: every image shows it, or none does."""
    return tuple(name for name, ok in zip(names, present(labels)) if not ok)


def finding_aucs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each finding's ROC AUC (NaN where ``present`` is False)."""
    labels = np.asarray(labels)
    return np.array([roc_auc_score(labels[:, j], probs[:, j]) if ok else np.nan
                     for j, ok in enumerate(present(labels))], dtype=np.float64)


def macro_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """The mean AUC over the findings that have both classes (NaN only when none has)."""
    aucs = finding_aucs(probs, labels)
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


def micro_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """One AUC over every (image, finding) pair: common findings weigh more than in the macro AUC."""
    flat = np.asarray(labels).ravel()
    return float(roc_auc_score(flat, np.asarray(probs).ravel())) if 0 < flat.sum() < len(flat) else float("nan")


def bce(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy per image and finding, of probabilities (unweighted)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def multilabel_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5,
                       prefix: str = "") -> dict[str, float]:
    """loss, acc, auc (macro over findings present), sensitivity, specificity and balanced accuracy
    (each averaged over findings, at ``threshold``): the keys every task reports."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(probs) >= threshold
    positive = labels == 1
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (predicted & positive).sum(axis=0) / positive.sum(axis=0)
        specificity = (~predicted & ~positive).sum(axis=0) / (~positive).sum(axis=0)
    sens = float(np.nanmean(sensitivity)) if np.isfinite(sensitivity).any() else float("nan")
    spec = float(np.nanmean(specificity)) if np.isfinite(specificity).any() else float("nan")
    metrics = {
        "loss": bce(probs, labels),
        "acc": float((predicted == positive).mean()),
        "auc": macro_auc(probs, labels),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_acc": (sens + spec) / 2,
    }
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def metric_safe(name: str) -> str:
    """A finding's name as part of a metric name (MLflow allows letters, digits, ``_ - . /`` and spaces)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()) or "finding"


def label_aucs(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
               prefix: str = "val_") -> dict[str, float]:
    """``<prefix>auc_<finding>`` for each finding that has both classes in ``labels``; the others are
    left out (``absent_findings`` names them), not NaN."""
    return {f"{prefix}auc_{metric_safe(name)}": float(auc)
            for name, auc in zip(names, finding_aucs(probs, labels)) if np.isfinite(auc)}
