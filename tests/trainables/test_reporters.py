"""``LocalReporter`` keeps the best epoch the way Tune's ``CheckpointConfig`` would."""

from __future__ import annotations

import math

from medtune.trainables.reporters import LocalReporter


def _epochs(reporter: LocalReporter, values: list[float | None]) -> dict:
    for epoch, value in enumerate(values, start=1):
        metrics = {"epoch": epoch} if value is None else {"epoch": epoch, "val_loss": value}
        reporter.report(metrics, None)
    return reporter.best


def test_best_epoch_follows_the_mode(tmp_path):
    assert _epochs(LocalReporter(tmp_path / "a", "val_loss", "min"), [0.5, 0.3, 0.4])["epoch"] == 2
    assert _epochs(LocalReporter(tmp_path / "b", "val_loss", "max"), [0.5, 0.3, 0.4])["epoch"] == 1


def test_a_nan_or_missing_epoch_never_wins_and_a_nan_first_epoch_is_overtaken(tmp_path):
    assert _epochs(LocalReporter(tmp_path / "a", "val_loss", "min"), [0.5, math.nan, None, 0.6])["epoch"] == 1
    assert _epochs(LocalReporter(tmp_path / "b", "val_loss", "min"), [math.nan, 0.7, 0.8])["epoch"] == 2
