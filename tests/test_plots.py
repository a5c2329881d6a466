"""The sweep's plots: ASHA's stopping points are visible, Optuna's views draw from the leaderboard."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from search.plots import learning_curves, rebuilt_study, sweep_plots
from search.results import LeaderboardEntry
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


ENTRIES = [LeaderboardEntry(f"t{i}", {"lr": 10 ** (-4 + i / 2), "dropout": 0.1 + 0.1 * i,
                                      "architecture": ["simple_cnn", "resnet18"][i % 2]},
                            0.9 + 0.02 * i, 2, 4, {}) for i in range(4)]


def test_rebuilt_study_holds_every_ranked_trial_with_its_values():
    study = rebuilt_study(ENTRIES, SPEC)
    assert [t.value for t in study.trials] == [e.best_value for e in ENTRIES]
    assert study.best_trial.params["architecture"] == "resnet18" and study.direction.name == "MAXIMIZE"


def test_all_four_plots_are_drawn(tmp_path):
    results = [_fake(1, 0.8), _fake(2, 0.85), _fake(4, 0.9), _fake(4, 0.92)]
    paths = sweep_plots(results, ENTRIES, SPEC, tmp_path)
    assert {p.name for p in paths} == {"learning_curves.png", "optimization_history.png",
                                       "parallel_coordinates.png", "param_importances.png"}
    assert all(p.stat().st_size > 5000 for p in paths)


def test_learning_curves_title_counts_asha_stops(tmp_path, monkeypatch):
    import matplotlib.axes

    titles = []
    original = matplotlib.axes.Axes.set
    monkeypatch.setattr(matplotlib.axes.Axes, "set", lambda self, **kw: (titles.append(kw.get("title")), original(self, **kw))[1])
    learning_curves([_fake(1, 0.8), _fake(2, 0.85), _fake(4, 0.9)], SPEC, tmp_path / "curves.png")
    assert "stopped by ASHA, 2" in titles[-1] and "full budget, 1" in titles[-1]
