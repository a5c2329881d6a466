"""The sweep's learning curves show ASHA's stopping points (Optuna's views of the study: test_study.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from search.plots import learning_curves, sweep_plots
from search.spec import validate_spec

SPEC = validate_spec({
    "name": "plots", "data": {"source": "pneumoniamnist"}, "metric": {"name": "val_auc", "mode": "max"},
    "search": {"num_samples": 4, "scheduler": {"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2}},
    "space": {"lr": {"loguniform": [1e-4, 1e-2]}, "dropout": {"uniform": [0.1, 0.5]},
              "architecture": {"choice": ["simple_cnn", "resnet18"]}},
}, source="plots.yaml")


def _fake(n_epochs: int, start: float):
    frame = pd.DataFrame({"epoch": range(1, n_epochs + 1), "val_auc": [start + 0.01 * i for i in range(n_epochs)]})
    return SimpleNamespace(metrics_dataframe=frame)


def test_without_a_study_only_the_learning_curves_are_drawn(tmp_path):
    results = [_fake(1, 0.8), _fake(2, 0.85), _fake(4, 0.9), _fake(4, 0.92)]
    paths = sweep_plots(results, None, SPEC, tmp_path)
    assert [p.name for p in paths] == ["learning_curves.png"] and paths[0].stat().st_size > 5000


def test_learning_curves_title_counts_asha_stops(tmp_path, monkeypatch):
    import matplotlib.axes

    titles = []
    original = matplotlib.axes.Axes.set
    monkeypatch.setattr(matplotlib.axes.Axes, "set", lambda self, **kw: (titles.append(kw.get("title")), original(self, **kw))[1])
    learning_curves([_fake(1, 0.8), _fake(2, 0.85), _fake(4, 0.9)], SPEC, tmp_path / "curves.png")
    assert "stopped by ASHA, 2" in titles[-1] and "full budget, 1" in titles[-1]
