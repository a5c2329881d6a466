"""Racing over folds: a cross-validated trial trains one fold model until ASHA's last rung, then all of them.

The objective waits for every fold (NaN before), so nothing that selects by it can pick an epoch
judged on one fold; ASHA compares trials by ``<objective>_race``, the estimate over the folds
trained so far. Training-function tests run on a PneumoniaMNIST subset without Ray.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtune.search.spec.sweep_spec import asha_milestones, race_until, scheduler_metric, validate_spec
from medtune.trainables.config import TrialConfig
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import folds_in_epoch, load_checkpoint, run_training

TINY = {"architecture": "simple_cnn", "data_source": "pneumoniamnist", "data_train_subset": 240,
        "data_val_subset": 60, "batch_size": 32, "lr": 2e-3, "seed": 3}


def _raw(**search) -> dict:
    return {"name": "race", "data": {"source": "pneumoniamnist"}, "search": {"num_samples": 4, **search},
            "space": {"batch_size": {"choice": [32, 128]}}, "fixed": {"architecture": "simple_cnn"}}


def test_the_race_ends_at_ashas_last_rung_below_the_budget():
    demo = _raw(cv=3, scheduler={"unit": "images", "max_t": 27000, "grace_period": 4000, "reduction_factor": 3})
    spec = validate_spec(demo, "s.yaml")
    assert asha_milestones(spec.search.scheduler) == [4000, 12000]
    assert race_until(spec.search) == 12000 and spec.trial_base()["cv_race_until"] == 12000
    assert scheduler_metric(spec) == "val_auc_race"
    # A rung at max_t itself is no rung a trial can race to; FIFO has none; racing can be turned off.
    assert race_until(validate_spec(_raw(cv=3, scheduler={"max_t": 9, "grace_period": 1}), "s.yaml").search) == 3
    for raw in (_raw(cv=3, scheduler={"name": "fifo"}), _raw(cv=3, cv_racing=False), _raw(cv=None)):
        spec = validate_spec(raw, "s.yaml")
        assert race_until(spec.search) is None and "cv_race_until" not in spec.trial_base()
        assert scheduler_metric(spec) == "val_auc"


def test_milestones_are_where_rays_asha_places_its_rungs():
    """A canary: if Ray moves its rungs, the race would end at the wrong place."""
    from medtune.search.run.tuner import build_scheduler

    for max_t, grace, factor in ((27000, 4000, 3), (9, 1, 3), (8, 1, 4), (30, 10, 3), (100, 1, 2.5)):
        spec = validate_spec(_raw(cv=3, scheduler={"max_t": max_t, "grace_period": grace,
                                                   "reduction_factor": factor}), "s.yaml")
        rungs = sorted(m for m, _ in build_scheduler(spec)._brackets[0]._rungs)
        assert asha_milestones(spec.search.scheduler) == [math.ceil(m) for m in rungs if m < max_t]
        assert build_scheduler(spec)._metric == "val_auc_race"


def test_one_fold_trains_until_the_race_ends_then_every_fold():
    cfg = TrialConfig.from_dict({**TINY, "cv_folds": 3, "budget_unit": "images", "budget": 4000,
                                 "cv_race_until": 1200})
    # 400 images an epoch: epoch 3 reaches 1,200 (ASHA's rung, judged on one fold); epoch 4 has all folds.
    assert [folds_in_epoch(cfg, e, 400) for e in range(1, 6)] == [1, 1, 1, 3, 3]
    assert folds_in_epoch(TrialConfig.from_dict({**TINY, "cv_folds": 3}), 1, 400) == 3
    assert folds_in_epoch(TrialConfig.from_dict(TINY), 1, 400) == 1


@pytest.mark.slow  # trains every fold of a trial
def test_a_racing_trial_reports_the_objective_only_once_every_fold_trains(tmp_path, pneumoniamnist_path):
    reporter = LocalReporter(tmp_path / "race", metric="val_auc", mode="max", num_threads=1)
    outcome = run_training({**TINY, "cv_folds": 3, "epochs": 4, "cv_race_until": 2}, reporter)
    racing, full = reporter.history[:2], reporter.history[2:]
    assert [m["cv_folds_active"] for m in reporter.history] == [1, 1, 3, 3]
    assert all(math.isnan(m["val_auc"]) and math.isnan(m["val_loss"]) and 0 <= m["val_auc_race"] <= 1
               for m in racing)
    assert all(m["val_auc"] == m["val_auc_race"] and m["val_auc_sem"] >= 0 for m in full)
    # The best epoch is one judged on every fold, and the outcome has all folds' models and predictions.
    assert reporter.best["epoch"] in (3, 4)
    assert len(outcome.fold_models) == 3 and outcome.oof_probs.shape == (300, 2)
    assert len(load_checkpoint(reporter.last_checkpoint)["folds"]) == 3


def test_a_trial_stopped_while_racing_trained_one_fold(tmp_path, pneumoniamnist_path):
    class Stopped(Exception):
        pass

    class StopAtRung(LocalReporter):
        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            if metrics["epoch"] == 2:
                raise Stopped  # ASHA's stop at the rung, as the loop sees it: no more epochs

    reporter = StopAtRung(tmp_path / "stopped", metric="val_auc", mode="max", num_threads=1)
    with pytest.raises(Stopped):
        run_training({**TINY, "cv_folds": 3, "epochs": 4, "cv_race_until": 2}, reporter)
    assert len(load_checkpoint(reporter.last_checkpoint).get("folds") or [None]) == 1


@pytest.mark.slow  # trains every fold of a trial
def test_a_racing_trial_resumed_before_the_folds_join_matches_one_run_straight(tmp_path, pneumoniamnist_path):
    class Interrupted(Exception):
        pass

    class StopAfterFirst(LocalReporter):
        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            raise Interrupted

    config = {**TINY, "cv_folds": 2, "epochs": 3, "cv_race_until": 1}
    with pytest.raises(Interrupted):
        run_training(config, StopAfterFirst(tmp_path / "run", metric="val_auc", mode="max", num_threads=1))
    resumed = LocalReporter(tmp_path / "run", metric="val_auc", mode="max", resume=True, num_threads=1)
    run_training(config, resumed)
    straight = LocalReporter(tmp_path / "straight", metric="val_auc", mode="max", num_threads=1)
    run_training(config, straight)
    assert [m["cv_folds_active"] for m in resumed.history] == [2, 2]
    assert np.allclose([m["val_loss"] for m in resumed.history], [m["val_loss"] for m in straight.history[1:]],
                       rtol=1e-5)
