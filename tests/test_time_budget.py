"""``search.time_budget_s`` reaches Tune: a sweep stops on the clock, not only on num_samples."""

from __future__ import annotations

import time

from search.spec import validate_spec
from search.tuner import build_tuner

EPOCHS = 3
EPOCH_SECONDS = 0.5


def test_a_time_budget_ends_the_sweep_before_num_samples(tmp_path):
    import ray

    def slow_trivial(config: dict) -> None:
        """Three 'epochs' of half a second each: a trial lasts about 1.5 s. (Defined here so that
        Ray pickles it by value: the workers cannot import this test module.)"""
        from ray import tune

        for epoch in range(1, EPOCHS + 1):
            time.sleep(EPOCH_SECONDS)
            tune.report({"val_auc": 0.5 + config["dropout"] * epoch / 10, "epoch": epoch})

    spec = validate_spec({
        "name": "budget", "data": {"source": "pneumoniamnist"}, "metric": {"name": "val_auc", "mode": "max"},
        "search": {"num_samples": 200, "max_concurrent": 2, "time_budget_s": 8,
                   "sampler": {"name": "random", "seed": 0}, "scheduler": {"name": "fifo", "max_t": EPOCHS}},
        "resources": {"cpu": 1, "gpu": 0},
        "space": {"dropout": {"uniform": [0.1, 0.5]}},
        "mlflow": {"enabled": False},
        "storage": str(tmp_path / "ray_results"),
    }, source="budget.yaml")
    assert spec.search.time_budget_s == 8
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        grid = build_tuner(spec, "budget", trainable=slow_trivial).fit()
    finally:
        ray.shutdown()
    # 200 trials of 1.5 s, two at a time, need 150 s; the budget cut the sweep long before.
    assert len(grid) < 200
    finished = [r for r in grid if r.metrics and r.metrics.get("epoch") == EPOCHS]
    assert finished, "trials that finished inside the budget keep their results"
