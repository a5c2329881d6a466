"""The MLflow client in a child process: real MLflow on a real sqlite store, over the real pipe."""

from __future__ import annotations

import os
import signal

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from medtune.search.tracking.client_process import MlflowClientProcess, store_runs_in_process

#: Each test starts MLflow child processes (4-8 s each): out of the fast loop.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("uri, local", [
    ("sqlite:////tmp/mlruns.db", True), ("postgresql://u:p@db/mlflow", True), ("/tmp/mlruns", True),
    ("file:///tmp/mlruns", True), ("http://127.0.0.1:5000", False), ("https://mlflow.example.org", False),
    ("databricks", False), ("databricks://profile", False),
])
def test_which_stores_run_in_the_callers_process(uri, local):
    assert store_runs_in_process(uri) is local


@pytest.fixture
def client(tmp_path):
    proxy = MlflowClientProcess(f"sqlite:///{tmp_path}/mlruns.db")
    yield proxy
    proxy.close()


def test_calls_run_in_the_child_and_return_mlflows_objects(client, tmp_path):
    experiment = client.create_experiment("proc", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment, run_name="t1", tags={"medtune.trial_id": "t1"})
    client.log_batch(run.info.run_id, metrics=[Metric("val_auc", 0.9, 0, 1)], params=[Param("lr", "0.01")],
                     tags=[RunTag("medtune.outcome", "completed")])
    client.set_terminated(run.info.run_id, status="FINISHED")

    child_pid = client._child.pid
    assert child_pid != os.getpid()
    with open(f"/proc/{child_pid}/cmdline", "rb") as cmdline:
        assert b"mlruns.db" not in cmdline.read()  # the URI (credentials, maybe) is not on a command line

    from mlflow import MlflowClient  # read back in this process, from the same store

    stored = MlflowClient(f"sqlite:///{tmp_path}/mlruns.db").get_run(run.info.run_id)
    assert stored.data.params == {"lr": "0.01"} and stored.data.metrics == {"val_auc": 0.9}
    assert stored.data.tags["medtune.outcome"] == "completed" and stored.info.status == "FINISHED"


def test_mlflows_errors_are_raised_in_the_caller(client):
    with pytest.raises(MlflowException, match="nonexistent-run"):
        client.get_run("nonexistent-run")
    assert client.search_experiments()  # the child is still serving


def test_a_dead_child_fails_one_call_and_the_next_starts_a_new_one(client):
    client.search_experiments()
    first = client._child.pid
    os.kill(first, signal.SIGKILL)
    client._child.wait()
    with pytest.raises(ConnectionError, match="MLflow process exited"):
        client._child.poll = lambda: None  # as if the death were not yet noticed when the call starts
        client.search_experiments()
    assert client.search_experiments()
    assert client._child.pid != first


def test_start_waits_for_a_ready_child_and_reuses_it(client):
    client.start()
    child = client._child
    assert child.poll() is None
    client.start()
    assert client._child is child


def test_close_ends_the_child(client):
    client.search_experiments()
    child = client._child
    client.close()
    assert child.poll() is not None and client._child is None
