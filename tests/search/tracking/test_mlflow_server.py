"""A sweep logged to a real ``mlflow server`` whose artifacts live on S3 (moto, server mode).

The server is started with ``mlflow/start-server.sh`` (the script a team uses) on a free port of
127.0.0.1, proxying artifacts to a bucket of a moto S3 server. The sweep's driver gets only the
tracking URI, no S3 credentials; the checkpoints must nevertheless land in the bucket (checked
with boto3), and the test's fake secret must appear nowhere in the MLflow store or the output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import EPOCH_BUDGET_2, REPO, MlflowServer, child_runs, free_port, subprocess_env

pytestmark = pytest.mark.slow

NUM_SAMPLES = 3
BUCKET = "medtune-mlflow"


@pytest.fixture()
def mlflow_server(tmp_path, s3_server):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                      aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    s3.create_bucket(Bucket=BUCKET)
    server = MlflowServer(tmp_path, free_port(), f"sqlite:///{tmp_path}/server.db", f"s3://{BUCKET}/artifacts",
                          s3_server.env).start()
    try:
        yield server.uri, s3, tmp_path / "server.db"
    finally:
        server.stop()


def test_sweep_logs_to_the_server_and_checkpoints_land_in_the_bucket(tmp_path, mlflow_server, s3_server,
                                                                    pneumoniamnist_path):
    from mlflow import MlflowClient

    uri, s3, store = mlflow_server
    env = subprocess_env()
    for name in s3_server.env:  # the driver needs no S3 credentials: the server proxies artifacts
        env.pop(name, None)
    overrides = ["name=server-test", f"search.num_samples={NUM_SAMPLES}", *EPOCH_BUDGET_2,
                 "data.train_subset=400", "data.val_subset=200", "space.architecture={choice: [simple_cnn]}",
                 "fixed.pretrained=none", f"mlflow.tracking_uri={uri}", f"storage={tmp_path / 'ray_results'}"]
    command = [sys.executable, "-m", "medtune", "sweep", str(REPO / "spaces" / "demo.yaml"), "--name", "server"]
    for item in overrides:
        command += ["--set", item]
    sweep = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=480)
    output = sweep.stdout + sweep.stderr
    assert sweep.returncode == 0, output[-4000:]

    client = MlflowClient(tracking_uri=uri)
    runs = child_runs(client, "server-test")
    assert len(runs) == NUM_SAMPLES
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])]
    for run in runs:
        assert any(k.endswith(f"{run.info.run_id}/artifacts/best_checkpoint/model.safetensors") for k in keys), \
            run.info.run_id
    assert any(k.endswith("leaderboard.csv") for k in keys) and any(k.endswith("space.yaml") for k in keys)

    # No credential anywhere: not in the store (params, tags, metrics), the artifacts' index, or the output.
    for secret in (s3_server.secret_key, s3_server.access_key):
        assert secret.encode() not in Path(store).read_bytes()
        assert secret not in output
    for run in runs:
        text = str(run.data.params) + str(run.data.tags)
        assert s3_server.secret_key not in text and s3_server.access_key not in text
