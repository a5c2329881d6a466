"""A sweep driver killed mid-sweep and continued with ``medtune resume``, on local and S3 storage.

Real processes: ``python -m medtune sweep`` runs in its own session (Ray started in-process, so its
GCS and raylet share the driver's fate), is SIGKILLed once two trials have finished and another
is mid-way, and ``python -m medtune resume RUN`` continues it. Checked: trials finished before the
kill are finished exactly once (no epoch of theirs is trained again), a trial interrupted mid-way
continues from its checkpoint instead of starting over, every trial has exactly one MLflow child
run, the sweep still ends with ``num_samples`` trials, and the parent run is closed. On S3 (moto
in server mode on 127.0.0.1) the checkpoints are objects in the bucket and the resume reads the
experiment back from there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import check_resumed_sweep, kill_driver_midway, subprocess_env

pytestmark = pytest.mark.slow

NUM_SAMPLES = 6
MAX_T = 4


def _space(root: Path, storage: str) -> dict:
    return {
        "name": "resume-test",
        "data": {"source": "pneumoniamnist", "image_size": 28, "train_subset": 1500, "val_subset": 200},
        "metric": {"name": "val_auc", "mode": "max"},
        "search": {"num_samples": NUM_SAMPLES, "max_concurrent": 2, "sampler": {"name": "tpe", "seed": 3},
                   "scheduler": {"name": "asha", "max_t": MAX_T, "grace_period": 2, "reduction_factor": 2}},
        "resources": {"cpu": 1, "gpu": 0},
        "space": {"dropout": {"uniform": [0.2, 0.5]}, "lr": {"loguniform": [5e-4, 5e-3]},
                  "batch_size": {"choice": [32, 64]}},
        "fixed": {"architecture": "simple_cnn", "pretrained": "none"},
        "mlflow": {"tracking_uri": f"sqlite:///{root}/mlruns.db", "artifact_location": str(root / "artifacts")},
        "storage": storage,
    }


def _kill_and_resume(tmp_path: Path, storage: str, env: dict[str, str]):
    from mlflow import MlflowClient

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space(tmp_path, storage)))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    finished, interrupted = kill_driver_midway(
        [sys.executable, "-m", "medtune", "sweep", str(space), "--name", "killed"], tmp_path, env, client,
        "resume-test", tmp_path / "sweep.log")
    assert len(finished) < NUM_SAMPLES
    run_path = f"{storage}/killed"
    resumed = subprocess.run([sys.executable, "-m", "medtune", "resume", run_path], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=420)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    check_resumed_sweep(client, "resume-test", NUM_SAMPLES, finished, interrupted)
    return run_path, finished


def test_killed_driver_is_resumed_without_rerunning_or_duplicating(tmp_path, pneumoniamnist_path):
    # Tune saves its experiment state every second here, so the kill loses at most a second of it.
    env = subprocess_env(TUNE_GLOBAL_CHECKPOINT_S="1")
    run_path, finished = _kill_and_resume(tmp_path, str(tmp_path / "ray_results"), env)
    assert (Path(run_path) / "best_config.yaml").exists()

    # ASHA's first rung (epoch 2) kept the values recorded before the kill: the trials finished
    # then are in it, with their epoch-2 objective, next to the trials that reached it after resuming.
    import json

    from helpers import child_runs

    from mlflow import MlflowClient

    rungs = json.loads((Path(run_path) / "asha_rungs.json").read_text())["brackets"][0]["rungs"]
    first = next(r for r in rungs if r["milestone"] == 2)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    at_epoch_2 = {r.data.tags["medtune.trial_id"]: next(m.value
                                                         for m in client.get_metric_history(r.info.run_id, "val_auc")
                                                         if m.step == 2)
                  for r in child_runs(client, "resume-test")}
    assert finished <= set(first["trials"]), (finished, first)
    assert set(first["trials"]) == set(at_epoch_2)  # every trial trains to epoch 2 at least
    for trial, value in first["trials"].items():
        assert abs(value - at_epoch_2[trial]) < 1e-9, (trial, value, at_epoch_2[trial])


def test_sweep_on_s3_storage_checkpoints_into_the_bucket_and_resumes_from_it(tmp_path, pneumoniamnist_path, s3_server):
    import boto3

    bucket = "medtune-sweeps"
    env = subprocess_env(TUNE_GLOBAL_CHECKPOINT_S="1", **s3_server.env)
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                      aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    s3.create_bucket(Bucket=bucket)
    _kill_and_resume(tmp_path, f"s3://{bucket}/sweeps", env)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="sweeps/killed/")
            for o in page.get("Contents", [])]
    assert {"sweeps/killed/medtune_sweep.json", "sweeps/killed/best_config.yaml",
            "sweeps/killed/asha_rungs.json"} <= set(keys)
    checkpoints = {k.split("/")[2] for k in keys if "/checkpoint_" in k and k.endswith("checkpoint.pt")}
    assert len(checkpoints) == NUM_SAMPLES, sorted(checkpoints)  # every trial checkpointed into the bucket
    assert not any("ray_results" in p.name for p in tmp_path.iterdir())


def test_unwritable_s3_storage_is_refused_before_any_trial(tmp_path, pneumoniamnist_path, s3_server):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space(tmp_path, "s3://no-such-bucket/sweeps")))
    env = subprocess_env(**s3_server.env)
    out = subprocess.run([sys.executable, "-m", "medtune", "validate", str(space)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "storage: cannot write to 's3://no-such-bucket/sweeps'" in out.stderr
    assert "AWS_ENDPOINT_URL_S3" in out.stderr
    assert s3_server.secret_key not in out.stdout + out.stderr
