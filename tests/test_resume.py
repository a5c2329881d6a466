"""A sweep driver killed mid-sweep and continued with ``medtune resume``.

Real processes: ``python -m search sweep`` runs in its own session (Ray started in-process, so its
GCS and raylet share the driver's fate), is SIGKILLed once two trials have finished, and
``python -m search resume`` continues it. Checked: trials finished before the kill are finished
exactly once (no epoch of theirs is trained again), a trial interrupted mid-way continues from its
checkpoint instead of starting over, every trial has exactly one MLflow child run,
the sweep still ends with ``num_samples`` trials, and the parent run is closed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import child_runs, finished_trial_ids, subprocess_env

pytestmark = pytest.mark.slow

NUM_SAMPLES = 6
MAX_T = 4


def _space(root: Path) -> dict:
    return {
        "name": "resume-test",
        "data": {"source": "pneumoniamnist", "image_size": 28, "train_subset": 1500, "val_subset": 200},
        "metric": {"name": "val_loss", "mode": "min"},
        "search": {"num_samples": NUM_SAMPLES, "max_concurrent": 2, "sampler": {"name": "tpe", "seed": 3},
                   "scheduler": {"name": "asha", "max_t": MAX_T, "grace_period": 2, "reduction_factor": 2}},
        "resources": {"cpu": 1, "gpu": 0},
        "space": {"dropout": {"uniform": [0.2, 0.5]}, "lr": {"loguniform": [5e-4, 5e-3]},
                  "batch_size": {"choice": [32, 64]}},
        "fixed": {"architecture": "simple_cnn", "pretrained": "none"},
        "mlflow": {"tracking_uri": f"sqlite:///{root}/mlruns.db", "artifact_location": str(root / "artifacts")},
        "storage": str(root / "ray_results"),
    }


def test_killed_driver_is_resumed_without_rerunning_or_duplicating(tmp_path, pneumoniamnist_path):
    from mlflow import MlflowClient

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space(tmp_path)))
    # Save Tune's experiment state every second, so the kill below loses at most a second of it.
    env = subprocess_env(TUNE_GLOBAL_CHECKPOINT_S="1")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    log = open(tmp_path / "sweep.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "search", "sweep", str(space), "--name", "killed"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        finished_before: set[str] = set()
        interrupted: set[str] = set()
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.5)
            if (tmp_path / "mlruns.db").exists():
                finished_before = finished_trial_ids(client, "resume-test")
                interrupted = {r.data.tags["medtune.trial_id"] for r in child_runs(client, "resume-test")
                               if r.data.tags["medtune.trial_id"] not in finished_before
                               and client.get_metric_history(r.info.run_id, "val_loss")}
                # Kill when two trials are done and another is mid-way, with a checkpoint behind it.
                if len(finished_before) >= 2 and interrupted:
                    break
        assert driver.poll() is None, f"the sweep ended before it could be killed:\n{(tmp_path / 'sweep.log').read_text()[-3000:]}"
        assert len(finished_before) >= 2 and interrupted, "no kill point reached within 4 minutes"
        time.sleep(1.5)  # what was observed is in Tune's next state snapshot
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        log.close()
    assert len(finished_before) < NUM_SAMPLES

    run_path = tmp_path / "ray_results" / "killed"
    resumed = subprocess.run([sys.executable, "-m", "search", "resume", str(run_path)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=420)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    runs = child_runs(client, "resume-test")
    trial_ids = [r.data.tags["medtune.trial_id"] for r in runs]
    assert len(trial_ids) == NUM_SAMPLES and len(set(trial_ids)) == NUM_SAMPLES, trial_ids
    finished_after = finished_trial_ids(client, "resume-test")
    assert finished_before <= finished_after and len(finished_after) == NUM_SAMPLES
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        if run.data.tags["medtune.trial_id"] in finished_before:
            assert len(steps) == len(set(steps)), f"a finished trial trained again: epochs {steps}"
        if run.data.tags["medtune.trial_id"] in interrupted:
            # Restarted from its checkpoint, not from scratch: epoch 1 was trained once.
            assert steps.count(1) == 1, f"an interrupted trial started over: epochs {steps}"
        assert sorted(set(steps)) == list(range(1, max(steps) + 1)), steps
        assert run.info.status == "FINISHED"
        assert "best_checkpoint" in {a.path for a in client.list_artifacts(run.info.run_id)}
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.tags["medtune.resumed"] == "1"
    assert (run_path / "best_config.yaml").exists()
