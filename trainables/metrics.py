"""Classification metrics computed from a split's predicted probabilities.

Kept free of torch so the final report (and its tests) can recompute the same numbers from saved
predictions. For two classes the positive class is the last one (``pneumonia`` / ``PNEUMONIA``;
``trainables/data/classes.py`` puts it there): sensitivity is its recall, specificity the recall
of the first class. With more classes, both are macro averages of each class against the rest
(sensitivity then equals balanced accuracy), and AUC is the macro one-vs-rest AUC.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from medtune.trainables.multilabel import multilabel_metrics


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (unweighted: a proper scoring rule)."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(p).mean())


def roc_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (binary: of the positive class; multi-class: one-vs-rest macro). NaN if one class."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=list(range(probs.shape[1]))))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5,
                           prefix: str = "") -> dict[str, float]:
    """Loss, accuracy, AUC, sensitivity, specificity and balanced accuracy for one split (multi-label
    findings, labels (N, L): ``multilabel.multilabel_metrics``, the same keys)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim == 2:
        return multilabel_metrics(probs, labels, threshold, prefix)
    if probs.shape[1] == 2:
        predicted = (probs[:, 1] >= threshold).astype(np.int64)
    else:
        predicted = probs.argmax(axis=1)
    recalls = []
    for cls in range(probs.shape[1]):
        mask = labels == cls
        recalls.append(float((predicted[mask] == cls).mean()) if mask.any() else float("nan"))
    if probs.shape[1] == 2:
        sensitivity, specificity = recalls[-1], recalls[0]
    else:  # each class against the rest, averaged: no class is "the" positive one
        specificities = [float((predicted[labels != cls] != cls).mean()) if (labels != cls).any() else float("nan")
                         for cls in range(probs.shape[1])]
        sensitivity, specificity = float(np.nanmean(recalls)), float(np.nanmean(specificities))
    metrics = {
        "loss": log_loss(probs, labels),
        "acc": float((predicted == labels).mean()),
        "auc": roc_auc(probs, labels),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_acc": float(np.nanmean(recalls)),
    }
    return {f"{prefix}{k}": v for k, v in metrics.items()}
