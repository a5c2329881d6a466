"""A sweep submitted with ``ray job submit`` to a real head started with ``ray start --head``.

Everything on 127.0.0.1 with free ports; the head is stopped at the end. The job uploads the
repository as its working directory through ``cluster/runtime_env.yaml`` (whose excludes keep the
upload small: the repository holds a multi-GiB ``.venv`` and results here, so a missing exclude
fails the submission), joins the cluster through the ``RAY_ADDRESS`` the job supervisor sets, and logs to
an MLflow store the test then reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import EPOCH_BUDGET_2, REPO, child_runs, free_port, subprocess_env

pytestmark = pytest.mark.slow

NUM_SAMPLES = 4


@pytest.fixture()
def ray_head(tmp_path):
    """``ray start --head --block`` on loopback with free ports, with token authentication on.

    ``ray start`` does not create a token (only ``ray.init`` of a local cluster does): the test
    writes its own, for the head and the client, through ``RAY_AUTH_TOKEN_PATH``, so it neither
    needs nor touches ``~/.ray/auth_token``. ``--block`` keeps the head's processes in one process
    group of their own, so the test stops exactly them (``ray stop`` would stop every Ray process
    on the machine).
    """
    import os
    import secrets
    import signal
    import urllib.error
    import urllib.request

    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = subprocess_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    gcs, dashboard, client_port, agent = free_port(), free_port(), free_port(), free_port()
    ray = str(Path(sys.executable).parent / "ray")
    log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--ray-client-server-port", str(client_port), "--num-cpus", "2", "--num-gpus", "0",
         # The job agent's HTTP port: Ray's default (52365) is taken by any other Ray node on the machine.
         "--dashboard-agent-listen-port", str(agent),
         "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 120
        while True:  # the job server answers once the dashboard is up
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # it answers (an auth refusal is an answer)
                break
            except OSError:
                assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the Ray head did not come up in 2 minutes"
                time.sleep(1)
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block: ray stops the processes it started
        try:
            # Every process of this head is in its group, and it already got SIGTERM: what is left
            # after a few seconds is only Ray's own grace period (about 30 s), not cleanup work.
            head.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()
        # Ray records the newest head for address="auto"; drop the record of the one just stopped.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.exists() and current.read_text().strip().endswith(f":{gcs}"):
            current.unlink()


def test_ray_job_submit_runs_a_sweep_on_the_cluster(tmp_path, ray_head, pneumoniamnist_path):
    from mlflow import MlflowClient

    address, env = ray_head
    tracking = f"sqlite:///{tmp_path}/mlruns.db"
    overrides = [
        "name=job-submit", f"search.num_samples={NUM_SAMPLES}", *EPOCH_BUDGET_2,
        "data.train_subset=400", "data.val_subset=200", "space.architecture={choice: [simple_cnn]}",
        "fixed.pretrained=none", f"mlflow.tracking_uri={tracking}",
        f"mlflow.artifact_location={tmp_path / 'artifacts'}", f"storage={tmp_path / 'ray_results'}",
    ]
    command = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address,
               "--working-dir", str(REPO), "--runtime-env", str(REPO / "cluster" / "runtime_env.yaml"),
               "--", "python", "-m", "medtune", "sweep", "spaces/demo.yaml", "--name", "submitted"]
    for item in overrides:
        command += ["--set", item]
    started = time.monotonic()
    for _ in range(6):  # the head's job agent registers a little after its dashboard answers
        job = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
        output = job.stdout + job.stderr
        if "No available agent to submit job" not in output:
            break
        time.sleep(5)
    assert job.returncode == 0, output[-5000:]
    assert "succeeded" in output, output[-3000:]

    client = MlflowClient(tracking_uri=tracking)
    runs = child_runs(client, "job-submit")
    assert len(runs) == NUM_SAMPLES, output[-3000:]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert (tmp_path / "ray_results" / "submitted" / "best_config.yaml").exists()
    record = json.loads((tmp_path / "ray_results" / "submitted" / "medtune_sweep.json").read_text())
    assert record["run_name"] == "submitted"
    print(f"\nray job submit: {NUM_SAMPLES} trials in {time.monotonic() - started:.0f} s")

