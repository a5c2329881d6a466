"""How well a two-class model's scores are calibrated, before and after ``medtune final`` calibrates them.

A threshold-based report says nothing about whether a score of 0.8 means an 80% chance, which
matters to anyone who reads the score itself, and to every operating point that reads scores as
probabilities. ``medtune final`` fits a calibration map on held-out scores
(``medtune.trainables.calibration``); this module records, on the test split, the Brier score,
the expected calibration error (ECE) and the reliability diagram's bins of the raw scores
(``before``) and of the calibrated ones (``after``) in ``report.json`` (so the diagrams can be
redrawn from it), and draws both curves in ``calibration.png``, which ``report.html`` shows. A
multi-class task gets none of it: one class's probability against the rest would mislead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medtune.trainables.calibration import expected_calibration_error

#: Equal-width score bins of the reliability diagram: 10 is the usual choice, and with a few hundred
#: test images each populated bin still holds enough images for its observed fraction to mean much.
CALIBRATION_BINS = 10


def calibration_summary(scores: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Brier score, ECE and the reliability diagram's bins (positive class = label 1, as in the report).

    Each bin records its edges, its image count, its mean score and the observed share of positives,
    so the diagram can be redrawn from ``report.json`` and empty bins are visible as empty (sklearn's
    ``calibration_curve`` drops them and keeps no counts). Bins are assigned as sklearn does; the
    ECE is over these same bins.
    """
    from sklearn.metrics import brier_score_loss

    scores = np.asarray(scores, dtype=np.float64)
    positive = (np.asarray(labels) == 1).astype(np.int64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], scores, side="right")
    table = []
    for k in range(bins):
        inside = which == k
        n = int(inside.sum())
        table.append({"low": float(edges[k]), "high": float(edges[k + 1]), "count": n,
                      "mean_score": float(scores[inside].mean()) if n else None,
                      "fraction_positive": float(positive[inside].mean()) if n else None})
    return {"brier": float(brier_score_loss(positive, scores)),
            "ece": expected_calibration_error(scores, positive, bins), "n": int(len(scores)), "bins": table}


def calibration_record(raw_scores: np.ndarray, calibrated_scores: np.ndarray, labels: np.ndarray,
                       calibration_map: dict[str, Any] | None) -> dict[str, Any]:
    """``report.json``'s ``calibration``: the map, and the test split's numbers ``before`` and
    ``after`` calibration; ``brier`` and ``ece`` at the top are the calibrated scores' (the ones the
    report decides on)."""
    before = calibration_summary(raw_scores, labels)
    after = calibration_summary(calibrated_scores, labels)
    return {"map": calibration_map, "n": after["n"], "brier": after["brier"], "ece": after["ece"],
            "before": {k: before[k] for k in ("brier", "ece", "bins")},
            "after": {k: after[k] for k in ("brier", "ece", "bins")}}


def _curve(ax: Any, summary: dict[str, Any], label: str, style: str, color: str) -> None:
    filled = [b for b in summary["bins"] if b["count"]]
    ax.plot([b["mean_score"] for b in filled], [b["fraction_positive"] for b in filled], style, color=color,
            label=f"{label} (ECE {summary['ece']:.3f}, Brier {summary['brier']:.4f})")


def plot_calibration(calibration: dict[str, Any], path: Path) -> None:
    """Reliability diagrams (observed share of positives against mean score per bin) of the raw and
    the calibrated test scores, over histograms of both, so a bin's point can be weighed by how many
    images it holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before, after = calibration["before"], calibration["after"]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 5.8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    _curve(ax, before, "before calibration", "s:", "#d95f02")
    _curve(ax, after, "after calibration", "o-", "#1f77b4")
    ax.set(ylabel="observed share of positives", xlim=(0, 1), ylim=(0, 1),
           title="Calibration of the best model, held-out test split")
    ax.legend(loc="lower right", fontsize=8)
    lows = [b["low"] for b in after["bins"]]
    widths = [b["high"] - b["low"] for b in after["bins"]]
    hist.bar(lows, [b["count"] for b in after["bins"]], width=widths, align="edge", color="#8fb8de",
             edgecolor="white", label="after")
    edges = lows + [after["bins"][-1]["high"]]
    counts = [b["count"] for b in before["bins"]]
    hist.stairs(counts, edges, color="#d95f02", linewidth=1.5, label="before")
    hist.set(xlabel="predicted probability of the positive class", ylabel="images")
    hist.legend(loc="upper center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_calibration(out: Path, raw_scores: np.ndarray, calibrated_scores: np.ndarray, labels: np.ndarray,
                      calibration_map: dict[str, Any] | None = None) -> dict[str, Any]:
    """``calibration.png`` in ``out``; returns the numbers for ``report.json``."""
    calibration = calibration_record(raw_scores, calibrated_scores, labels, calibration_map)
    plot_calibration(calibration, out / "calibration.png")
    return calibration
