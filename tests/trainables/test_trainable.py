"""The training function without Ray: metrics every epoch, a checkpoint, and resuming from it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtune.trainables.config import TrialConfig, check_value
from medtune.trainables.metrics import classification_metrics
from medtune.trainables.objective import reported_by
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import class_weights, load_checkpoint, run_training

SMALL = {
    "architecture": "simple_cnn",
    "data_source": "pneumoniamnist",
    "data_train_subset": 400,
    "data_val_subset": 200,
    "batch_size": 32,
    "lr": 2e-3,
    "epochs": 2,
    "dropout": 0.3,
    "seed": 1,
}


def test_one_epoch_reports_every_metric_and_a_checkpoint(tmp_path, pneumoniamnist_path):
    reporter = LocalReporter(tmp_path / "run", metric="val_loss", mode="min", num_threads=1)
    outcome = run_training({**SMALL, "epochs": 1}, reporter)
    assert len(reporter.history) == 1
    metrics = reporter.history[0]
    for name in reported_by("auto"):  # val_qwk and val_mae are ordinal tasks' (test_ordinal.py)
        assert name in metrics and math.isfinite(metrics[name]), name
    assert metrics["epoch"] == 1
    assert 0.5 < metrics["val_auc"] <= 1.0  # it learned something in one epoch on 400 images
    state = load_checkpoint(reporter.last_checkpoint)
    assert state["epoch"] == 1 and state["config"]["architecture"] == "simple_cnn"
    assert set(state) >= {"model", "optimizer", "lr_schedule", "epoch", "config", "metrics", "class_names"}
    assert outcome.data.class_names == ("normal", "pneumonia")


class Interrupted(Exception):
    pass


class InterruptingReporter(LocalReporter):
    """Dies after ``after`` epochs, as a trial on a lost node would."""

    def __init__(self, *args, after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.after = after

    def report(self, metrics, checkpoint_dir):
        super().report(metrics, checkpoint_dir)
        if len(self.history) >= self.after:
            raise Interrupted


@pytest.mark.slow  # trains and restarts a model
def test_restart_from_checkpoint_continues_at_the_next_epoch(tmp_path, pneumoniamnist_path):
    folder = tmp_path / "run"
    first = InterruptingReporter(folder, num_threads=1, after=1)
    with pytest.raises(Interrupted):
        run_training({**SMALL, "epochs": 3}, first)
    saved = load_checkpoint(first.last_checkpoint)

    resumed = LocalReporter(folder, resume=True, num_threads=1)
    outcome = run_training({**SMALL, "epochs": 3}, resumed)
    assert outcome.start_epoch == 2
    assert [m["epoch"] for m in resumed.history] == [2, 3]
    assert saved["epoch"] == 1
    # Resumed epochs match an uninterrupted run: weights, optimizer, LR schedule and RNG came back.
    straight = LocalReporter(tmp_path / "straight", num_threads=1)
    run_training({**SMALL, "epochs": 3}, straight)
    for resumed_epoch, straight_epoch in zip(resumed.history, straight.history[1:]):
        assert resumed_epoch["val_loss"] == pytest.approx(straight_epoch["val_loss"], rel=1e-4)
        assert resumed_epoch["lr"] == pytest.approx(straight_epoch["lr"])


def test_training_is_seeded(tmp_path, pneumoniamnist_path):
    a = LocalReporter(tmp_path / "a", num_threads=1)
    b = LocalReporter(tmp_path / "b", num_threads=1)
    run_training({**SMALL, "epochs": 1}, a)
    run_training({**SMALL, "epochs": 1}, b)
    assert a.history[0]["val_loss"] == pytest.approx(b.history[0]["val_loss"], rel=1e-5)


def test_trial_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown trial config keys"):
        TrialConfig.from_dict({"architecture": "simple_cnn", "learning_rate": 1.0})
    with pytest.raises(ValueError, match="lr: must be > 0"):
        TrialConfig.from_dict({"lr": 0.0})
    assert TrialConfig.from_dict({"lr": 1}).lr == 1.0


def test_data_settings_have_one_range_for_trial_configs_and_data_configs():
    """``DATA_SETTINGS`` is the one table: a trial config and a ``DataConfig`` accept the same values."""
    from medtune.trainables.data import DataConfig, DataError
    from medtune.trainables.data.config import DATA_SETTINGS

    values = [None, 0, 1, 2, 7, 8, 0.005, 0.01, 0.5, 0.9, 0.95, 1.0, 2.0, True, "", "x", float("nan")]
    for setting in DATA_SETTINGS:
        for value in values:
            if setting.name == "positive_class":  # a DataConfig keeps an index as text
                continue
            try:
                DataConfig(**{"source": "pneumoniamnist", setting.name: value})
                data_ok = True
            except DataError as exc:
                assert f"DataConfig.{setting.name}:" in str(exc)
                data_ok = False
            trial_ok = check_value(setting.trial_key, value) is None
            if setting.name == "source":  # a trial config has a default source; blank ones fail in the data layer
                trial_ok = trial_ok and value not in (None, "")
            assert data_ok == trial_ok, (setting.name, value)


def test_a_data_config_comes_from_a_trial_config_without_torch():
    import subprocess
    import sys

    probe = ("import sys; from medtune.trainables.config import TrialConfig; "
             "from medtune.trainables.data.config import DataConfig; "
             "d = DataConfig.from_trial_values({'data_source': 'x.npz', 'data_val_fraction': 0.2, 'image_size': 32, "
             "'cache_dir': '/c', 'lr': 0.1}); "
             "assert d == DataConfig.from_trial(TrialConfig(data_source='x.npz', data_val_fraction=0.2, image_size=32, "
             "cache_dir='/c')); "
             "assert d.trial_values()['data_val_fraction'] == 0.2 and d.cache_dir == '/c'; "
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_metrics_match_a_direct_computation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p1 = np.clip(labels * 0.6 + rng.random(200) * 0.5, 0, 1)
    probs = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(probs, labels, prefix="val_")
    predicted = (p1 >= 0.5).astype(int)
    assert m["val_acc"] == pytest.approx((predicted == labels).mean())
    assert m["val_sensitivity"] == pytest.approx(predicted[labels == 1].mean())
    assert m["val_specificity"] == pytest.approx(1 - predicted[labels == 0].mean())
    # AUC as the probability that a random positive outranks a random negative.
    pos, neg = p1[labels == 1], p1[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert m["val_auc"] == pytest.approx(pairs)
    assert m["val_loss"] == pytest.approx(-np.log(np.clip(probs[np.arange(200), labels], 1e-12, 1)).mean())


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 25 + [1] * 75)
    w = class_weights(labels, 2)
    assert float(w[0] * 25) == pytest.approx(float(w[1] * 75))


class _Untouchable:
    """Stands in for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"training read the test split ({name})")

    def __len__(self):
        raise AssertionError("training read the test split (len)")


def test_training_never_reads_the_test_split(tmp_path, pneumoniamnist_path):
    from dataclasses import replace

    from medtune.trainables.data import DataConfig, load_splits

    cfg = TrialConfig.from_dict({**SMALL, "epochs": 1})
    data = replace(load_splits(DataConfig.from_trial(cfg)), test=_Untouchable())
    reporter = LocalReporter(tmp_path / "run", metric="val_loss", mode="min", num_threads=1)
    run_training(cfg, reporter, data=data)
    assert len(reporter.history) == 1


@pytest.mark.slow  # trains and restarts a model
def test_report_threshold_comes_from_validation_and_intervals_bracket_the_value():
    from medtune.trainables.binary_report import build_report, choose_threshold, point_metrics, youden_threshold

    rng = np.random.default_rng(0)
    val_labels = np.repeat([0, 1], 200)
    val_scores = np.clip(0.3 + 0.4 * val_labels + rng.normal(0, 0.15, 400), 0, 1)
    test_labels = np.repeat([0, 1], [150, 250])
    test_scores = np.clip(0.35 + 0.4 * test_labels + rng.normal(0, 0.15, 400), 0, 1)
    youden = youden_threshold(val_scores, val_labels)
    assert 0.4 < youden < 0.6  # between the two classes' centres on val
    chosen = choose_threshold(val_scores, val_labels)  # the default rule: middle of the widest best-J run
    assert chosen.tied_low < chosen.value <= chosen.tied_high and 0.4 < chosen.value < 0.6
    assert point_metrics(val_scores, val_labels, chosen.value)["sensitivity"] + \
        point_metrics(val_scores, val_labels, chosen.value)["specificity"] - 1 == pytest.approx(chosen.best_j)
    threshold = chosen.value
    report = build_report("m", val_scores, val_labels, test_scores, test_labels, ("normal", "pneumonia"))
    assert report.threshold == threshold  # not re-chosen on test
    assert report.metrics == point_metrics(test_scores, test_labels, threshold)
    for name, value in report.metrics.items():
        low, high = report.intervals[name]
        assert low <= value <= high and high - low < 0.2, name
    c = report.confusion
    assert c["tp"] + c["fn"] == 250 and c["tn"] + c["fp"] == 150


def test_checkpoints_carry_and_restore_every_gpus_random_state(tmp_path, monkeypatch, pneumoniamnist_path):
    """CUDA's generators are saved and restored like the CPU's; tested through fakes, CI has no GPU."""
    import torch

    import medtune.trainables.checkpoints
    import medtune.trainables.train

    saved = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5, 6], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(medtune.trainables.checkpoints, "cuda_rng_state", lambda: saved)
    monkeypatch.setattr(medtune.trainables.train, "restore_cuda_rng", lambda states: restored.append(states))
    first = LocalReporter(tmp_path / "run", metric="val_loss", mode="min", num_threads=1)
    run_training({**SMALL, "epochs": 1}, first)
    state = load_checkpoint(first.last_checkpoint)
    assert [t.tolist() for t in state["cuda_rng"]] == [[1, 2, 3], [4, 5, 6]]
    resumed = LocalReporter(tmp_path / "run", metric="val_loss", mode="min", resume=True, num_threads=1)
    run_training({**SMALL, "epochs": 2}, resumed)
    assert [[t.tolist() for t in states] for states in restored] == [[[1, 2, 3], [4, 5, 6]]]
