"""The ROC curve and confusion matrix figures of ``medtune final`` (``roc_curve.png``, ``confusion_matrix.png``).

Two classes: one ROC curve per report (best model, ensemble mean) with the chosen operating point
marked on it, and each report's 2 x 2 matrix at its threshold. More classes: one one-vs-rest ROC
curve per class of the best model, and each report's K x K matrix of the most probable class.
Rows are the true class, columns the predicted one, as in ``report.md``. The Grad-CAM figure is
``final_gradcam``'s, the reliability diagram ``calibration``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from medtune.search.results.final_members import FinalMember


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, dpi: int) -> None:
    plt = _pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _matrix_panels(reports: list[Any], side: float, draw: Callable[[Any, Any], None]) -> Any:
    """One confusion-matrix panel per report, ``side`` inches square; ``draw(ax, report)`` fills it."""
    fig, axes = _pyplot().subplots(1, len(reports), figsize=(side * len(reports), side), squeeze=False)
    for ax, report in zip(axes[0], reports):
        draw(ax, report)
    return fig


def plot_binary(out: Path, reports: list[Any], members: list[FinalMember], data: Any) -> None:
    """Each report's ROC curve with its operating point, and its 2 x 2 confusion matrix."""
    from sklearn.metrics import roc_curve

    scores = [members[0].test_scores]
    if len(reports) > 1:
        scores.append(np.mean([m.test_scores for m in members], axis=0))
    fig, ax = _pyplot().subplots(figsize=(5, 5))
    for report, s in zip(reports, scores):
        fpr, tpr, _ = roc_curve(data.test.labels, s)
        ax.plot(fpr, tpr, label=f"{report.name} (AUC {report.metrics['roc_auc']:.3f})")
        c = report.confusion
        ax.plot(c["fp"] / max(c["fp"] + c["tn"], 1), c["tp"] / max(c["tp"] + c["fn"], 1), "o",
                label=f"{report.name}: threshold {report.threshold:.2f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC, held-out test split")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, out / "roc_curve.png", dpi=120)

    names = [data.class_names[0], data.class_names[-1]]

    def draw(ax: Any, report: Any) -> None:
        c = report.confusion
        matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=12)
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=names, yticklabels=names, xlabel="predicted",
               ylabel="true", title=report.name)

    _save(_matrix_panels(reports, 4, draw), out / "confusion_matrix.png", dpi=120)


def plot_multiclass(out: Path, reports: list[Any], members: list[FinalMember], data: Any) -> None:
    """One-vs-rest ROC curves per class of the best model, and each report's K x K confusion matrix."""
    from sklearn.metrics import roc_curve

    names, labels = list(data.class_names), data.test.labels
    fig, ax = _pyplot().subplots(figsize=(6, 5.5))
    for k, name in enumerate(names):
        if 0 < (labels == k).sum() < len(labels):
            fpr, tpr, _ = roc_curve(labels == k, members[0].test_scores[:, k])
            ax.plot(fpr, tpr, label=f"{name} (AUC {reports[0].per_class[name]['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity",
           title=f"ROC per class, one vs rest (best model)\nmacro AUC {reports[0].metrics['roc_auc']:.3f}")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, out / "roc_curve.png", dpi=110)

    def draw(ax: Any, report: Any) -> None:
        matrix = np.array(report.confusion)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=9,
                    color="white" if v > matrix.max() / 2 else "black")
        ticks = range(len(names))
        ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title=report.name)
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_yticklabels(names, fontsize=8)

    _save(_matrix_panels(reports, max(4.0, 0.55 * len(names) + 2), draw), out / "confusion_matrix.png", dpi=110)


def plot_multilabel(out: Path, reports: list[Any], members: list[FinalMember], data: Any) -> None:
    """One ROC curve per scored finding of the best model, each with its operating point marked
    (``roc_curve.png``); multi-label findings have no confusion matrix of classes to draw."""
    from sklearn.metrics import roc_curve

    best, labels = reports[0], np.asarray(data.test.labels)
    fig, ax = _pyplot().subplots(figsize=(6, 5.5))
    for k, name in enumerate(data.class_names):
        numbers = best.per_finding.get(name)
        if numbers is None:  # skipped: named in the report
            continue
        fpr, tpr, _ = roc_curve(labels[:, k], members[0].test_scores[:, k])
        line = ax.plot(fpr, tpr, label=f"{name} (AUC {numbers['roc_auc']['value']:.3f})")[0]
        ax.plot(1 - numbers["specificity"]["value"], numbers["sensitivity"]["value"], "o", color=line.get_color())
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity",
           title=f"ROC per finding (best model), dots at each threshold\nmacro AUC {best.metrics['auc_macro']:.3f}, "
                 f"micro AUC {best.metrics['auc_micro']:.3f}")
    ax.legend(loc="lower right", fontsize=7)
    _save(fig, out / "roc_curve.png", dpi=110)
