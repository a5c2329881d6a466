"""The MLflow tracking server goes away mid-sweep: trials keep training and nothing is lost.

A real ``mlflow server`` (``mlflow/start-server.sh``) on a free port is stopped once the first
trial has logged an epoch. In the first test it comes back on the same port a few seconds later:
the sweep finishes, the user saw one warning naming the server (and one that it is back), and
every trial's run holds every epoch, its outcome and its best checkpoint, because the queued
calls were retried. In the second it never comes back: the sweep still finishes with all results
in Ray's storage and says what could not be logged.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, MlflowServer, child_runs, free_port, subprocess_env

pytestmark = pytest.mark.slow

NUM_SAMPLES = 4
MAX_T = 5


def _start_sweep(tmp_path: Path, uri: str, num_samples: int = NUM_SAMPLES) -> subprocess.Popen:
    overrides = ["name=outage", f"search.num_samples={num_samples}", f"search.scheduler.max_t={MAX_T}",
                 "search.scheduler.name=fifo", "search.scheduler.unit=epochs", "search.scheduler.grace_period=1",
                 "search.cv=null", "data.train_subset=3000", "data.val_subset=200",
                 "space.architecture={choice: [simple_cnn]}", "fixed.pretrained=none",
                 f"mlflow.tracking_uri={uri}", f"storage={tmp_path / 'ray_results'}"]
    command = [sys.executable, "-m", "medtune", "sweep", str(REPO / "spaces" / "demo.yaml"), "--name", "outage"]
    for item in overrides:
        command += ["--set", item]
    return subprocess.Popen(command, cwd=tmp_path, env=subprocess_env(MEDTUNE_MLFLOW_RETRY_S="2"),
                            stdout=open(tmp_path / "sweep.log", "w"), stderr=subprocess.STDOUT)


def _wait_for_first_epoch(client, sweep: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert sweep.poll() is None, log.read_text()[-3000:]
        try:
            if any(client.get_metric_history(r.info.run_id, "val_auc") for r in child_runs(client, "outage")):
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError("no trial logged an epoch within 4 minutes")


def test_server_back_after_an_outage_gets_everything(tmp_path, pneumoniamnist_path):
    from mlflow import MlflowClient

    server = MlflowServer(tmp_path, free_port(), f"sqlite:///{tmp_path}/server.db", str(tmp_path / "artifacts")).start()
    try:
        client = MlflowClient(tracking_uri=server.uri)
        sweep = _start_sweep(tmp_path, server.uri)
        _wait_for_first_epoch(client, sweep, tmp_path / "sweep.log")
        server.stop()
        time.sleep(3)  # trials keep training meanwhile (and while the server restarts)
        assert sweep.poll() is None, "the sweep ended (or died) during the outage"
        server.start()
        assert sweep.wait(timeout=420) == 0, (tmp_path / "sweep.log").read_text()[-4000:]
        output = (tmp_path / "sweep.log").read_text()
        assert output.count("is unreachable") == 1, output[-4000:]
        assert server.uri in output and "is back" in output

        runs = child_runs(client, "outage")
        assert len(runs) == NUM_SAMPLES
        for run in runs:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_auc"))
            assert steps == list(range(1, MAX_T + 1)), steps
            assert run.info.status == "FINISHED" and run.data.tags["medtune.outcome"] == "completed"
            assert "best_checkpoint" in {a.path for a in client.list_artifacts(run.info.run_id)}
        parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
        assert parent.info.status == "FINISHED"
        assert "leaderboard.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    finally:
        server.stop()


def test_server_gone_for_good_the_sweep_still_finishes_and_says_what_is_missing(tmp_path, pneumoniamnist_path):
    import json

    from mlflow import MlflowClient

    server = MlflowServer(tmp_path, free_port(), f"sqlite:///{tmp_path}/server.db", str(tmp_path / "artifacts")).start()
    try:
        sweep = _start_sweep(tmp_path, server.uri, num_samples=2)
        _wait_for_first_epoch(MlflowClient(tracking_uri=server.uri), sweep, tmp_path / "sweep.log")
        server.stop()
        assert sweep.wait(timeout=420) == 0, (tmp_path / "sweep.log").read_text()[-4000:]
    finally:
        server.stop()
    output = (tmp_path / "sweep.log").read_text()
    assert output.count("is unreachable") == 1
    assert "MLflow operations could not be logged" in output
    run_folder = tmp_path / "ray_results" / "outage"
    unlogged = json.loads((run_folder / "mlflow_unlogged.json").read_text())
    assert any("metrics of trial" in u for u in unlogged) and any("parent run" in u for u in unlogged)
    assert (run_folder / "best_config.yaml").exists()
    trials = [p for p in run_folder.iterdir() if p.name.startswith("trial_")]
    assert len(trials) == 2
    for trial in trials:  # every epoch of every trial is in Ray's results
        assert len((trial / "result.json").read_text().strip().splitlines()) == MAX_T
