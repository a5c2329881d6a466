"""How well a two-class model's scores are calibrated: the Brier score and a reliability diagram.

A threshold-based report says nothing about whether a score of 0.8 means an 80% chance, which
matters to anyone who reads the score itself. ``medtune final`` records these numbers in
``report.json`` (so the diagram can be redrawn from it) and draws ``calibration.png``, which
``report.html`` shows. A multi-class task gets neither: one class's probability against the rest
would mislead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Equal-width score bins of the reliability diagram: 10 is the usual choice, and with a few hundred
#: test images each populated bin still holds enough images for its observed fraction to mean much.
CALIBRATION_BINS = 10


def calibration_summary(scores: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Brier score and the reliability diagram's bins (positive class = label 1, as in the report).

    Each bin records its edges, its image count, its mean score and the observed share of positives,
    so the diagram can be redrawn from ``report.json`` and empty bins are visible as empty (sklearn's
    ``calibration_curve`` drops them and keeps no counts). Bins are assigned as sklearn does.
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
    return {"brier": float(brier_score_loss(positive, scores)), "n": int(len(scores)), "bins": table}


def plot_calibration(calibration: dict[str, Any], path: Path) -> None:
    """Reliability diagram (observed share of positives against mean score per bin) over a histogram
    of the scores, so a bin's point can be weighed by how many images it holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    filled = [b for b in calibration["bins"] if b["count"]]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot([b["mean_score"] for b in filled], [b["fraction_positive"] for b in filled], "o-",
            label=f"best model (Brier {calibration['brier']:.4f})")
    ax.set(ylabel="observed share of positives", xlim=(0, 1), ylim=(0, 1),
           title="Calibration, held-out test split")
    ax.legend(loc="upper left", fontsize=8)
    lows = [b["low"] for b in calibration["bins"]]
    widths = [b["high"] - b["low"] for b in calibration["bins"]]
    hist.bar(lows, [b["count"] for b in calibration["bins"]], width=widths, align="edge", color="#8fb8de",
             edgecolor="white")
    hist.set(xlabel="predicted probability of the positive class", ylabel="images")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_calibration(out: Path, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``calibration.png`` in ``out``; returns the numbers for ``report.json``."""
    calibration = calibration_summary(scores, labels)
    plot_calibration(calibration, out / "calibration.png")
    return calibration
