"""The MLflow callback's logging thread: in order, never blocking Tune's loop, retrying an outage.

These drive the queue directly with operations that stand in for MLflow calls (the end-to-end
outage with a real ``mlflow server`` is in test_mlflow_outage.py).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time

import pytest

from search import tracking
from search.tracking import MlflowTrialCallback


@pytest.fixture()
def callback(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "RETRY_INTERVAL_S", 0.05)
    return MlflowTrialCallback(f"sqlite:///{tmp_path}/mlruns.db", "0", "parent", "val_auc", "max", 3)


def test_operations_run_in_order_off_the_calling_thread(callback):
    done: list[tuple[int, str]] = []
    for i in range(50):
        callback._call(f"op {i}", lambda i=i: done.append((i, threading.current_thread().name)))
    assert callback.finish() == []
    assert [i for i, _ in done] == list(range(50))
    assert {name for _, name in done} == {"medtune-mlflow"}


def test_a_slow_store_does_not_block_the_caller(callback):
    release = threading.Event()
    callback._call("slow", lambda: release.wait(10))
    started = time.perf_counter()
    for i in range(20):
        callback._call(f"op {i}", lambda: None)
    queued_in = time.perf_counter() - started
    release.set()
    assert callback.finish() == []
    assert queued_in < 5  # far below the 10 s the first operation would have blocked a synchronous caller


def test_an_outage_warns_once_retries_in_order_and_reports_back(callback, caplog):
    failures = {"left": 3}
    done: list[int] = []

    def flaky() -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("connection refused")
        done.append(0)

    callback._call("flaky", flaky)
    for i in range(1, 4):
        callback._call(f"op {i}", lambda i=i: done.append(i))
    with caplog.at_level(logging.WARNING, logger="search.tracking"):
        deadline = time.monotonic() + 10
        while done != [0, 1, 2, 3] and time.monotonic() < deadline:  # retried without finish() asking
            time.sleep(0.02)
        assert callback.finish() == []
    assert done == [0, 1, 2, 3]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is unreachable" in m for m in messages) == 1
    assert sum("is back" in m for m in messages) == 1


def test_what_never_got_logged_is_reported_by_finish(callback, caplog):
    def down() -> None:
        raise ConnectionError("connection refused")

    callback._call("metrics of trial t1 at epoch 1", down)
    callback._call("checkpoint, outcome and end of trial t1", lambda: None)
    with caplog.at_level(logging.WARNING, logger="search.tracking"):
        unlogged = callback.finish()
    assert unlogged == ["metrics of trial t1 at epoch 1", "checkpoint, outcome and end of trial t1"]
    assert sum("is unreachable" in r.getMessage() for r in caplog.records) == 1


def test_the_callback_pickles_without_its_thread(callback):
    """Tune pickles callbacks with the Tuner; a used callback must still pickle (state, no thread)."""
    callback.run_ids["t1"] = "run-1"
    callback._call("op", lambda: None)
    callback.finish()
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.run_ids == {"t1": "run-1"} and copy._thread is None
    done = []
    copy._call("again", lambda: done.append(1))
    assert copy.finish() == [] and done == [1]
