"""The one metrics table and ``Objective``: the direction is applied once, the same way everywhere."""

from __future__ import annotations

import math

import pytest

from medtune.trainables.objective import (
    EPOCH,
    LOGGED_METRICS,
    METRICS,
    PROGRESS_METRICS,
    REPORTED_METRICS,
    SHOWN_METRICS,
    Objective,
)


def test_the_table_derives_every_list():
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    assert set(REPORTED_METRICS) <= set(LOGGED_METRICS) == set(names)
    assert set(SHOWN_METRICS) <= set(REPORTED_METRICS)
    assert PROGRESS_METRICS[0] == EPOCH and set(PROGRESS_METRICS[1:]) <= set(REPORTED_METRICS)
    assert REPORTED_METRICS["val_auc"] == "max" and REPORTED_METRICS["val_loss"] == "min"
    assert "lr" in LOGGED_METRICS and "lr" not in REPORTED_METRICS  # bookkeeping, never an objective


@pytest.mark.parametrize("mode, better, worse", [("max", 0.9, 0.8), ("min", 0.2, 0.3)])
def test_better_best_and_sorted_follow_the_mode(mode, better, worse):
    objective = Objective("m", mode)
    assert objective.better(better, worse) and not objective.better(worse, better)
    assert not objective.better(better, better)  # strictly better: the first of ties is kept
    assert objective.better(worse, None) and objective.better(worse, math.nan)
    assert not objective.better(math.nan, worse) and not objective.better(None, worse)
    items = [("a", worse), ("b", None), ("c", better), ("d", better)]
    assert objective.best(items, key=lambda item: item[1]) == ("c", better)
    assert [name for name, _ in objective.sorted(items, key=lambda item: item[1])] == ["c", "d", "a", "b"]
    assert objective.best([], key=lambda item: item) is None


def test_directions_for_tables_and_defaults():
    assert Objective("val_loss", "min").order_ascending and not Objective("val_auc").order_ascending
    assert Objective.of("val_loss") == Objective("val_loss", "min")
    assert Objective.of("val_loss", "max").mode == "max"
    with pytest.raises(ValueError, match="mode must be one of"):
        Objective("val_auc", "maximize")


def test_a_trials_best_epoch_is_the_first_with_the_best_finite_value():
    from medtune.trainables.objective import trial_summary

    history = [{"epoch": 1, "val_auc": float("nan")}, {"epoch": 2, "val_auc": 0.8, "val_loss": 0.5},
               {"epoch": 3, "val_auc": 0.9, "val_loss": 0.4}, {"epoch": 4, "val_auc": 0.9}, {"epoch": 5}]
    summary = trial_summary(history, Objective("val_auc", "max"))
    assert (summary.best_value, summary.best_epoch, summary.epochs_run) == (0.9, 3, 5)
    assert summary.at_best["val_loss"] == 0.4
    loss = trial_summary(history, Objective("val_loss", "min"))
    assert (loss.best_value, loss.best_epoch) == (0.4, 3)
    # Racing over folds: no epoch has the objective yet, so there is no best epoch to select.
    assert trial_summary([{"epoch": 1, "val_auc": float("nan"), "val_auc_race": 0.9}], Objective()) is None
    assert trial_summary([], Objective()) is None
