"""The leaderboard ranks trials by their best epoch, and a trial without any value of the objective last."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from medtune.search.results.leaderboard import leaderboard
from medtune.search.spec.sweep_spec import validate_spec

SPEC = validate_spec({"name": "lb", "data": {"source": "pneumoniamnist"},
                      "search": {"scheduler": {"max_t": 4, "grace_period": 1}},
                      "space": {"lr": {"loguniform": [1e-4, 1e-2]}}}, "lb.yaml")


def _result(trial_id: str, rows: list[dict], error: str | None = None) -> SimpleNamespace:
    frame = pd.DataFrame(rows) if rows else None
    return SimpleNamespace(metrics_dataframe=frame, metrics={"trial_id": trial_id}, path=f"/x/trial_{trial_id}",
                           error=error, config={"lr": 1e-3})


def test_trials_rank_by_their_best_epoch_and_trials_without_a_value_go_last():
    nan = math.nan
    results = [
        # stopped by ASHA while racing on one fold: only the race estimate, never the k-fold objective
        _result("racing", [{"epoch": 1, "epochs_total": 4, "val_auc": nan, "val_auc_race": 0.99}]),
        _result("good", [{"epoch": e, "epochs_total": 4, "val_auc": v} for e, v in ((1, 0.7), (2, 0.93), (3, 0.9),
                                                                                      (4, 0.93))]),
        _result("stopped", [{"epoch": 1, "epochs_total": 4, "val_auc": 0.8}]),
        _result("failed", [], error="RuntimeError: boom"),
    ]
    entries = leaderboard(results, SPEC)
    assert [e.trial_id for e in entries[:2]] == ["good", "stopped"]
    good = entries[0]
    assert (good.best_value, good.best_epoch, good.epochs_run, good.outcome) == (0.93, 2, 4, "completed")
    racing = next(e for e in entries if e.trial_id == "racing")
    assert math.isnan(racing.best_value) and racing.outcome == "stopped_early" and racing.epochs_run == 1
    assert next(e for e in entries if e.trial_id == "failed").outcome == "failed"
