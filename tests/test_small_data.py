"""Small data sets: budgets in steps or images, cross-validated trials, and what validate warns about.

The training-function tests run on PneumoniaMNIST subsets without Ray; one sweep at the end runs
the real Ray Tune + Optuna + ASHA stack with cross-validated trials and a step budget, then
``medtune final`` on its best configuration.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medtune.search.spec.sweep_spec import SpecError, resolve_cv, validate_spec
from medtune.trainables.budget import (
    epochs_for_budget,
    images_per_epoch,
    steps_per_epoch,
    stopped_early,
    units_per_epoch,
)
from medtune.trainables.data.errors import DataError
from medtune.trainables.data.splits import kfold_indices
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import checkpoint_due, load_checkpoint, run_training

TINY = {
    "architecture": "simple_cnn",
    "data_source": "pneumoniamnist",
    "data_train_subset": 240,
    "data_val_subset": 60,
    "batch_size": 32,
    "lr": 2e-3,
    "seed": 3,
}


def _raw(**search) -> dict:
    return {"name": "small", "data": {"source": "pneumoniamnist"},
            "search": {"num_samples": 4, **search},
            "space": {"batch_size": {"choice": [32, 128]}}, "fixed": {"architecture": "simple_cnn"}}


# --- budgets -----------------------------------------------------------------------------------

def test_an_epoch_is_the_steps_and_images_training_really_takes():
    assert steps_per_epoch(546, 128) == 4 and images_per_epoch(546, 128) == 512  # last partial batch dropped
    assert steps_per_epoch(546, 32) == 17 and images_per_epoch(546, 32) == 544
    assert steps_per_epoch(20, 32) == 1 and images_per_epoch(20, 32) == 20  # one batch: nothing dropped
    assert units_per_epoch("epochs", 546, 32) == 1


def test_a_budget_means_the_same_training_on_a_small_and_a_large_set():
    # 27,000 images: about 6 epochs of PneumoniaMNIST's 4,708 and about 50 of a 546-image set.
    assert epochs_for_budget("images", 27000, 4708, 32) == 6
    assert epochs_for_budget("images", 27000, 546, 32) == 50
    # Steps round up: a trial trains at least its budget.
    assert epochs_for_budget("steps", 100, 546, 32) == 6 and 6 * 17 >= 100 > 5 * 17
    assert epochs_for_budget("epochs", 7, 546, 32) == 7
    with pytest.raises(ValueError, match="unknown budget unit 'hours'"):
        epochs_for_budget("hours", 1, 546, 32)


def test_stopped_early_reads_the_trials_own_epoch_plan():
    assert stopped_early({"epoch": 3, "epochs_total": 50})
    assert not stopped_early({"epoch": 50, "epochs_total": 50})
    assert stopped_early({"epoch": 2}, planned_epochs=6) and not stopped_early({"epoch": 6}, planned_epochs=6)
    assert not stopped_early({"epoch": 2}) and not stopped_early(None)


def test_long_epoch_plans_checkpoint_about_twenty_times_and_always_at_the_end():
    assert all(checkpoint_due(e, 6) for e in range(1, 7))
    due = [e for e in range(1, 101) if checkpoint_due(e, 100)]
    assert len(due) == 20 and due[-1] == 100
    due = [e for e in range(1, 51) if checkpoint_due(e, 50)]
    assert due[-1] == 50 and len(due) <= 26


def test_short_epochs_checkpoint_at_most_once_per_interval_besides_a_process_first_and_the_last():
    assert checkpoint_due(1, 6, since_last_s=None, interval_s=5.0)  # a trial ASHA stops at epoch 1 keeps one
    assert not checkpoint_due(2, 6, since_last_s=0.4, interval_s=5.0)
    assert checkpoint_due(3, 6, since_last_s=5.0, interval_s=5.0)
    assert checkpoint_due(6, 6, since_last_s=1.0, interval_s=5.0)  # the last always: a finished trial's weights
    assert not checkpoint_due(3, 100, since_last_s=60.0, interval_s=5.0)  # the plan's own spacing still holds


def test_a_step_budget_sets_the_epochs_and_every_report_carries_the_counters(tmp_path, pneumoniamnist_path):
    reporter = LocalReporter(tmp_path / "run", metric="val_auc", mode="max", num_threads=1)
    outcome = run_training({**TINY, "budget_unit": "steps", "budget": 20}, reporter)
    assert outcome.epochs == 3  # 240 images at batch 32: 7 steps an epoch
    assert [m["step"] for m in reporter.history] == [7, 14, 21]
    assert [m["images_seen"] for m in reporter.history] == [224, 448, 672]
    assert all(m["epochs_total"] == 3 for m in reporter.history)


# --- cross-validation --------------------------------------------------------------------------

def test_folds_partition_the_pool_and_keep_the_class_balance():
    labels = np.repeat([0, 1], [30, 90])
    folds = kfold_indices(labels, 5, seed=1)
    held = np.concatenate(folds)
    assert sorted(held.tolist()) == list(range(120))  # every image held out exactly once
    assert all((labels[f] == 0).sum() == 6 for f in folds)
    assert [f.tolist() for f in kfold_indices(labels, 5, seed=1)] == [f.tolist() for f in folds]  # seeded
    with pytest.raises(DataError, match="smallest class has 3 images"):
        kfold_indices(np.repeat([0, 1], [3, 50]), 5, seed=0)


@pytest.mark.slow  # trains every fold of a trial
def test_cross_validated_trial_reports_the_fold_mean_with_its_standard_error(tmp_path, pneumoniamnist_path):
    reporter = LocalReporter(tmp_path / "cv", metric="val_auc", mode="max", num_threads=1)
    outcome = run_training({**TINY, "cv_folds": 3, "epochs": 2}, reporter)
    last = reporter.history[-1]
    assert last["cv_folds"] == 3 and last["epochs_total"] == 2
    assert 0.5 < last["val_auc"] <= 1 and 0 <= last["val_auc_sem"] < 0.2
    # 300 pooled images, 3 folds: each model trains on 200 (6 steps at batch 32).
    assert last["step"] == 12
    assert len(outcome.fold_models) == 3
    assert outcome.oof_probs.shape == (300, 2) and np.allclose(outcome.oof_probs.sum(axis=1), 1)
    # The reported val_auc is the mean of the folds' AUCs on the images each held out.
    from medtune.trainables.metrics import roc_auc
    from medtune.trainables.train import fold_splits

    folds = fold_splits(outcome.config, outcome.data)
    per_fold = [roc_auc(outcome.oof_probs[rows], outcome.oof_labels[rows]) for _, _, rows in folds]
    assert last["val_auc"] == pytest.approx(np.mean(per_fold))
    assert last["val_auc_sem"] == pytest.approx(np.std(per_fold, ddof=1) / math.sqrt(3))
    state = load_checkpoint(reporter.last_checkpoint)
    assert len(state["folds"]) == 3 and set(state["folds"][0]) == {"model", "optimizer", "lr_schedule"}


@pytest.mark.slow  # trains every fold of a trial
def test_a_cross_validated_trial_resumes_every_fold_from_its_checkpoint(tmp_path, pneumoniamnist_path):
    class Interrupted(Exception):
        pass

    class StopAfterFirst(LocalReporter):
        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            raise Interrupted

    config = {**TINY, "cv_folds": 2, "epochs": 2}
    with pytest.raises(Interrupted):
        run_training(config, StopAfterFirst(tmp_path / "run", metric="val_auc", mode="max", num_threads=1))
    resumed = LocalReporter(tmp_path / "run", metric="val_auc", mode="max", resume=True, num_threads=1)
    run_training(config, resumed)
    straight = LocalReporter(tmp_path / "straight", metric="val_auc", mode="max", num_threads=1)
    run_training(config, straight)
    assert [m["epoch"] for m in resumed.history] == [2]
    assert resumed.history[0]["val_loss"] == pytest.approx(straight.history[1]["val_loss"], rel=1e-5)


# --- the space file ----------------------------------------------------------------------------

def test_budget_unit_and_cv_are_validated_with_their_key_paths():
    with pytest.raises(SpecError) as info:
        validate_spec(_raw(scheduler={"unit": "minutes"}, cv=1), "s.yaml")
    text = str(info.value)
    assert "search.scheduler.unit: must be one of ['epochs', 'steps', 'images'], got 'minutes'" in text
    assert "search.cv: expected at least 2 folds, got 1" in text
    with pytest.raises(SpecError, match="search.cv: expected an integer number of folds >= 2, 'auto' or null"):
        validate_spec(_raw(cv="yes"), "s.yaml")
    with pytest.raises(SpecError, match="fixed.cv_folds: unknown trial key"):
        validate_spec({**_raw(), "fixed": {"cv_folds": 3}}, "s.yaml")


def test_trials_get_the_budget_in_its_unit_and_the_folds():
    spec = validate_spec(_raw(scheduler={"unit": "steps", "max_t": 900, "grace_period": 100}, cv=5), "s.yaml")
    base = spec.trial_base()
    assert base["budget_unit"] == "steps" and base["budget"] == 900 and base["cv_folds"] == 5
    assert "epochs" not in base
    epochs = validate_spec(_raw(scheduler={"max_t": 4}), "s.yaml").trial_base()
    assert epochs["epochs"] == 4 and "budget" not in epochs and "cv_folds" not in epochs


def test_cv_auto_cross_validates_only_when_val_is_small():
    spec = validate_spec(_raw(cv="auto"), "s.yaml")
    assert resolve_cv(spec, {"normal": 20, "pneumonia": 58}).search.cv == 3
    assert resolve_cv(spec, {"normal": 135, "pneumonia": 389}).search.cv is None
    assert resolve_cv(spec, {"normal": 20, "pneumonia": 58}).trial_base()["cv_folds"] == 3


def test_tuner_keys_asha_on_the_budgets_counter():
    from medtune.search.run.tuner import build_scheduler

    spec = validate_spec(_raw(scheduler={"unit": "images", "max_t": 27000, "grace_period": 4000}), "s.yaml")
    scheduler = build_scheduler(spec)
    assert scheduler._time_attr == "images_seen" and scheduler._max_t == 27000


# --- what validate warns about -----------------------------------------------------------------

def test_hanley_mcneil_standard_error():
    from medtune.search.spec.advice import hanley_mcneil_se

    assert hanley_mcneil_se(0.9, 50, 50) == pytest.approx(0.0321, abs=5e-4)
    assert hanley_mcneil_se(0.9, 20, 58) > hanley_mcneil_se(0.9, 135, 389)


def _summary(train: dict[str, int], val: dict[str, int]) -> dict:
    return {"planned": {"train": {**train, "total": sum(train.values())}, "val": {**val, "total": sum(val.values())}}}


def test_validate_warns_when_an_epoch_budget_is_a_few_dozen_steps_on_a_small_set():
    from medtune.search.spec.advice import budget_warning

    breast = _summary({"benign": 399, "malignant": 147}, {"benign": 57, "malignant": 21})
    old_demo = validate_spec(_raw(scheduler={"max_t": 6}), "s.yaml")
    warning = budget_warning(old_demo, breast)
    assert warning and "only 102 optimizer steps" in warning and "search.scheduler.unit" in warning
    new_demo = validate_spec(_raw(scheduler={"unit": "images", "max_t": 27000, "grace_period": 4000}), "s.yaml")
    assert budget_warning(new_demo, breast) is None
    assert budget_warning(old_demo, _summary({"normal": 1214, "pneumonia": 3494},
                                             {"normal": 135, "pneumonia": 389})) is None


def test_validate_warns_when_val_is_too_small_for_the_number_of_trials():
    from medtune.search.spec.advice import validation_warning

    small = _summary({"benign": 399, "malignant": 147}, {"benign": 57, "malignant": 21})
    warning = validation_warning(validate_spec(_raw(num_samples=200), "s.yaml"), small)
    assert warning and "only 21 images in its smallest class" in warning and "best of 200 trials" in warning
    assert "search.cv" in warning
    assert validation_warning(validate_spec(_raw(cv=5), "s.yaml"), small) is None


def test_the_validate_command_prints_the_warnings(pneumoniamnist_path, capsys):
    from medtune.cli import main

    assert main(["validate", "spaces/demo.yaml", "--set", "data.train_subset=546", "--set", "data.val_subset=78",
                 "--set", "search.cv=null", "--set", "search.scheduler.unit=epochs",
                 "--set", "search.scheduler.max_t=6",
                 "--set", "search.scheduler.grace_period=1"]) == 0
    out = capsys.readouterr().out
    assert "warning: search.scheduler.max_t: a full trial trains only 102 optimizer steps" in out
    assert "warning: search.cv: the val split has only 20 images" in out
    assert main(["validate", "spaces/demo.yaml", "--set", "data.train_subset=546", "--set", "data.val_subset=78"]) == 0
    out = capsys.readouterr().out
    assert "3-fold cross-validated trials" in out and "racing on one fold up to ASHA's last rung (12000 images)" in out
    assert "warning: search" not in out


# --- final -------------------------------------------------------------------------------------

def test_final_best_epoch_budget_is_converted_through_the_trials_unit():
    from medtune.search.run.final import final_budget

    spec = validate_spec({**_raw(scheduler={"unit": "steps", "max_t": 900, "grace_period": 100}),
                          "provenance": {"best_epoch": 10}}, "s.yaml")
    # Each trial trained on 499 images at batch 32 (15 steps an epoch): epoch 10 is step 150.
    assert final_budget(spec, "best", {"batch_size": 32}, 499) == {"budget_unit": "steps", "budget": 150}
    assert final_budget(spec, "budget", {"batch_size": 32}, 499) == {"budget_unit": "steps", "budget": 900}
    epochs = validate_spec({**_raw(scheduler={"max_t": 6}), "provenance": {"best_epoch": 4}}, "s.yaml")
    assert final_budget(epochs, "best", {"batch_size": 32}, 499) == {"epochs": 4}


@pytest.fixture(scope="module")
def cv_sweep(tmp_path_factory, pneumoniamnist_path):
    import ray

    from medtune.search.run.ray_node import init_ray
    from medtune.search.run.sweep import run_sweep

    root = tmp_path_factory.mktemp("cv-sweep")
    raw = {
        "name": "cv",
        "data": {"source": "pneumoniamnist", "train_subset": 160, "val_subset": 40},
        "search": {"num_samples": 3, "max_concurrent": 2, "sampler": {"name": "random", "seed": 0}, "cv": "auto",
                   "scheduler": {"name": "asha", "unit": "steps", "max_t": 30, "grace_period": 10,
                                 "reduction_factor": 3}},
        "space": {"lr": {"loguniform": [1e-3, 5e-3]}},
        "fixed": {"architecture": "simple_cnn", "batch_size": 32},
        "mlflow": {"tracking_uri": f"sqlite:///{root}/mlruns.db", "artifact_location": str(root / "artifacts")},
        "storage": str(root / "ray_results"),
    }
    init_ray(num_cpus=2, log_to_driver=False)
    try:
        outcome = run_sweep(validate_spec(raw, source="cv.yaml"), run_name="cv-run")
    finally:
        ray.shutdown()
    return outcome, root


@pytest.mark.slow  # a real cross-validated sweep (about a minute)
def test_a_sweep_cross_validates_small_data_and_counts_its_budget_in_steps(cv_sweep):
    outcome, _ = cv_sweep
    assert len(outcome.entries) == 3 and all(e.error is None for e in outcome.entries)
    for result in outcome.results:
        frame = result.metrics_dataframe
        assert set(frame["cv_folds"]) == {3}  # 40 val images: auto chose 3 folds over 200
        # ASHA's one rung is at 10 steps (epoch 3): the trial races on one fold until then, and its
        # objective (with its standard error) is there from the epoch every fold trains.
        assert list(frame["cv_folds_active"]) == [1 if e <= 3 else 3 for e in frame["epoch"]]
        full = frame[frame["cv_folds_active"] == 3]
        assert frame.loc[frame["cv_folds_active"] == 1, "val_auc"].isna().all()
        if not full.empty:  # a trial ASHA stopped at its rung never reported the 3-fold estimate
            assert (full["val_auc_sem"] >= 0).all() and (full["val_auc"] == full["val_auc_race"]).all()
        # 200 pooled, 133 per fold model: 4 steps an epoch; a full trial reaches the 30 steps in 8 epochs.
        assert list(frame["step"]) == [4 * e for e in frame["epoch"]]
        assert frame["step"].iloc[-1] <= 32 and frame["epochs_total"].iloc[-1] == 8
    assert any((r.metrics_dataframe["cv_folds_active"] == 3).any() for r in outcome.results)  # one passed the rung


@pytest.mark.slow  # a real cross-validated sweep (about a minute)
def test_final_after_a_cross_validated_sweep_takes_its_threshold_out_of_fold(cv_sweep, tmp_path):
    from medtune.search.run.final import run_final
    from medtune.search.spec.loader import load_spec

    outcome, root = cv_sweep
    final = run_final(load_spec(outcome.best_config_path), out_dir=tmp_path / "final", gradcam_samples=0)
    report = json.loads((tmp_path / "final" / "report.json").read_text())
    assert report["cv_folds"] == 3 and report["budget_unit"] == "steps"
    assert report["train_images"] == 200 and report["calibration_images"] == 200  # every image, out of fold
    assert report["threshold_source"].startswith("out-of-fold predictions of 3-fold cross-validation")
    # 30 steps on all 200 images at batch 32 (6 steps an epoch): 5 epochs.
    assert final.epochs == 5
    single = report["reports"][0]
    # auto: balanced-1se on the out-of-fold scores once calibrated; every rule's numbers too
    assert single["threshold_rule"] == "balanced-1se" and "accuracy_at_0.5" in single
    assert single["threshold"] == pytest.approx(single["by_rule"]["balanced-1se"]["threshold"])
    assert single["calibration_map"]["fitted_on"] == 200 and "raw_threshold" in single
    assert report["threshold_source"].endswith("rule auto: balanced-1se") and "youden-mid" in single["by_rule"]
    assert "out-of-fold predictions" in (tmp_path / "final" / "report.md").read_text()
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns.db").get_run(final.run_id)
    assert run.data.tags["medtune.cv_folds"] == "3" and run.data.tags["medtune.threshold_rule"] == "balanced-1se"
    assert float(run.data.tags["medtune.threshold"]) == single["threshold"]
    assert json.loads(run.data.tags["medtune.calibration"]) == single["calibration_map"]
    assert run.data.tags["medtune.version"] and run.data.tags["mlflow.source.name"]  # MLflow's context tags
