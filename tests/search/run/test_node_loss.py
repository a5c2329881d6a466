"""A worker node lost mid-sweep: its trials restart on another node from their last checkpoint.

A simulated multi-node cluster (``ray.cluster_utils.Cluster``: a head with no CPUs for trials,
one 2-CPU worker node) runs a sweep whose driver is a separate ``python -m medtune sweep`` process
joined through ``RAY_ADDRESS``. Once a trial is mid-way, the worker node is removed and a new one
added. Every trial still finishes; the interrupted ones continue their epoch count from their
checkpoint (epoch 1 is trained once) in the same MLflow child run (``FailureConfig`` retries).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml
from helpers import FINISHED_OUTCOMES, child_runs, finished_trial_ids, subprocess_env

pytestmark = pytest.mark.slow

NUM_SAMPLES = 4
MAX_T = 4


def test_trials_on_a_lost_node_resume_from_their_checkpoints_elsewhere(tmp_path, pneumoniamnist_path):
    from ray.cluster_utils import Cluster

    from mlflow import MlflowClient

    space = {
        "name": "node-loss",
        "data": {"source": "pneumoniamnist", "image_size": 28, "train_subset": 1500, "val_subset": 200},
        "metric": {"name": "val_auc", "mode": "max"},
        # FIFO: every trial runs all its epochs, so each one is exposed to the node loss.
        "search": {"num_samples": NUM_SAMPLES, "max_concurrent": 2, "sampler": {"name": "random", "seed": 0},
                   "scheduler": {"name": "fifo", "max_t": MAX_T}, "max_failures": 3},
        "resources": {"cpu": 1, "gpu": 0},
        "space": {"lr": {"loguniform": [5e-4, 5e-3]}},
        "fixed": {"architecture": "simple_cnn", "pretrained": "none", "batch_size": 64},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlruns.db", "artifact_location": str(tmp_path / "art")},
        "storage": str(tmp_path / "ray_results"),
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")

    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 0, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "medtune", "sweep", "space.yaml", "--name", "lost"],
                              cwd=tmp_path, env=subprocess_env(RAY_ADDRESS=cluster.address),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        interrupted: set[str] = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None and not interrupted:
            time.sleep(0.5)
            try:
                runs = child_runs(client, "node-loss")
            except Exception:  # the store is being created by the driver
                continue
            interrupted = {r.data.tags["medtune.trial_id"] for r in runs
                           if r.data.tags.get("medtune.outcome") not in FINISHED_OUTCOMES
                           and len(client.get_metric_history(r.info.run_id, "val_loss")) >= 1}
        assert interrupted, f"no trial got mid-way:\n{(tmp_path / 'driver.log').read_text()[-3000:]}"
        cluster.remove_node(worker)  # its raylet and trial processes die with it
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        assert driver.wait(timeout=420) == 0, (tmp_path / "driver.log").read_text()[-5000:]
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
        cluster.shutdown()

    runs = child_runs(client, "node-loss")
    assert len(runs) == NUM_SAMPLES and len({r.data.tags["medtune.trial_id"] for r in runs}) == NUM_SAMPLES
    assert len(finished_trial_ids(client, "node-loss")) == NUM_SAMPLES
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert sorted(set(steps)) == list(range(1, MAX_T + 1)), steps
        if run.data.tags["medtune.trial_id"] in interrupted:
            assert int(run.data.tags.get("medtune.restarts", "0")) >= 1, "the node loss did not reach the trial"
            assert steps.count(1) == 1, f"an interrupted trial started over instead of resuming: epochs {steps}"
