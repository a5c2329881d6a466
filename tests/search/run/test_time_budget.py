"""``search.time_budget_s`` reaches Tune: a sweep stops on the clock, not only on num_samples."""

from __future__ import annotations

import os
import time

import pytest

from medtune.search.run.tuner import build_tuner
from medtune.search.spec.sweep_spec import validate_spec

EPOCHS = 3


@pytest.mark.slow  # a real sweep run to its time budget
def test_a_time_budget_ends_the_sweep_before_num_samples(tmp_path, monkeypatch):
    """The first trial finishes at once; every later one waits a minute before its first report,
    so the 20 s budget stops some trials that never reported. Tune's progress table used to sort
    those (None) against the others and raise at the end of the sweep."""
    import ray

    marker = tmp_path / "first-trial"

    def first_fast_then_slow(config: dict) -> None:
        # Defined here so that Ray pickles it by value: the workers cannot import this module.
        from ray import tune

        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            time.sleep(120)
        for epoch in range(1, EPOCHS + 1):
            tune.report({"val_auc": 0.5 + config["dropout"] * epoch / 10, "epoch": epoch})

    spec = validate_spec({
        "name": "budget", "data": {"source": "pneumoniamnist"}, "metric": {"name": "val_auc", "mode": "max"},
        "search": {"num_samples": 200, "max_concurrent": 2, "time_budget_s": 20,
                   "sampler": {"name": "random", "seed": 0}, "scheduler": {"name": "fifo", "max_t": EPOCHS}},
        "resources": {"cpu": 1, "gpu": 0},
        "space": {"dropout": {"uniform": [0.1, 0.5]}},
        "mlflow": {"enabled": False},
        "storage": str(tmp_path / "ray_results"),
    }, source="budget.yaml")
    assert spec.search.time_budget_s == 20
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "0")  # run_sweep's progress table, the one that raised
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        grid = build_tuner(spec, "budget", trainable=first_fast_then_slow).fit()
    finally:
        ray.shutdown()
    # Without the budget the sweep would run 200 trials for over an hour.
    assert len(grid) < 200
    finished = [r for r in grid if r.metrics and r.metrics.get("epoch") == EPOCHS]
    assert len(finished) == 1, "the trial that finished inside the budget keeps its results"
    assert any(not (r.metrics or {}).get("val_auc") for r in grid), "some trial was stopped before it reported"
