"""The MLflow callback's logging queue: in order, never blocking Tune's loop, retrying an outage;
and the callback's hooks: batched metrics, best epochs, outcomes and the state Tune pickles.

The queue tests drive it directly with operations that stand in for MLflow calls (the end-to-end
outage with a real ``mlflow server`` is in test_mlflow_outage.py).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time

import pytest

from medtune.search.tracking import _queue, trial_runs
from medtune.search.tracking.callback import MlflowTrialCallback

#: The callback's warnings (the queue's outage messages too) are logged under the callback's name.
LOGGER = "medtune.search.tracking.callback"


@pytest.fixture()
def callback(tmp_path, monkeypatch):
    monkeypatch.setattr(_queue, "RETRY_INTERVAL_S", 0.05)
    return MlflowTrialCallback(f"sqlite:///{tmp_path}/mlruns.db", "0", "parent", "val_auc", "max", 3)


@pytest.fixture()
def queue(callback):
    return callback._queue


def test_operations_run_in_order_off_the_calling_thread(queue):
    done: list[tuple[int, str]] = []
    for i in range(50):
        queue.put(f"op {i}", lambda i=i: done.append((i, threading.current_thread().name)))
    assert queue.finish() == []
    assert [i for i, _ in done] == list(range(50))
    assert {name for _, name in done} == {"medtune-mlflow"}


def test_a_slow_store_does_not_block_the_caller(queue):
    release = threading.Event()
    queue.put("slow", lambda: release.wait(10))
    started = time.perf_counter()
    for i in range(20):
        queue.put(f"op {i}", lambda: None)
    queued_in = time.perf_counter() - started
    release.set()
    assert queue.finish() == []
    assert queued_in < 5  # far below the 10 s the first operation would have blocked a synchronous caller


def test_an_outage_warns_once_retries_in_order_and_reports_back(callback, queue, caplog):
    failures = {"left": 3}
    done: list[int] = []

    def flaky() -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("connection refused")
        done.append(0)

    queue.put("flaky", flaky)
    for i in range(1, 4):
        queue.put(f"op {i}", lambda i=i: done.append(i))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        deadline = time.monotonic() + 10
        while done != [0, 1, 2, 3] and time.monotonic() < deadline:  # retried without finish() asking
            time.sleep(0.02)
        assert callback.finish() == []
    assert done == [0, 1, 2, 3]
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum("is unreachable" in m for m in messages) == 1
    assert sum("is back" in m for m in messages) == 1
    assert callback.seconds_logging > 0


def test_what_never_got_logged_is_reported_by_finish(callback, queue, caplog):
    def down() -> None:
        raise ConnectionError("connection refused")

    queue.put("metrics of trial t1 at epoch 1", down)
    queue.put("checkpoint, outcome and end of trial t1", lambda: None)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        unlogged = callback.finish()
    assert unlogged == ["metrics of trial t1 at epoch 1", "checkpoint, outcome and end of trial t1"]
    assert sum("is unreachable" in r.getMessage() for r in caplog.records if r.name == LOGGER) == 1


def test_the_callback_pickles_without_its_thread(callback):
    """Tune pickles callbacks with the Tuner; a used callback must still pickle (state, no thread)."""
    callback.run_ids["t1"] = "run-1"
    callback._queue.put("op", lambda: None)
    callback.finish()
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.run_ids == {"t1": "run-1"} and copy._queue._thread is None
    done = []
    copy._queue.put("again", lambda: done.append(1))
    assert copy.finish() == [] and done == [1]


def test_the_pickled_callback_holds_no_credentials_and_resume_gives_them_back():
    callback = MlflowTrialCallback("http://medtune:s3cret@127.0.0.1:5000", "0", "parent", "val_auc", "max", 3)
    data = pickle.dumps(callback)
    assert b"s3cret" not in data
    copy = pickle.loads(data)
    assert "s3cret" not in copy.tracking_uri and "127.0.0.1:5000" in copy.tracking_uri
    copy.tracking_uri = "http://medtune:s3cret@127.0.0.1:5000"  # what resume_sweep does
    assert copy._runs.tracking_uri.endswith("s3cret@127.0.0.1:5000") and "s3cret" not in copy._queue.target


def test_the_saved_state_restores_runs_bests_numbers_and_restarts(callback):
    state = {"run_ids": {"t1": "run-1"}, "best": {"t1": (0.9, 2)}, "checkpointed": {"t1": (0.8, 3)},
             "numbers": {"t1": 7}, "best_checkpoint": {"t1": "handle"}, "restarts": {"t1": 1}}
    callback.set_state(state)
    assert callback.get_state() == state
    assert callback._runs.restored  # a restored sweep looks for child runs its saved state predates


class _RecordingClient:
    """Stands in for MlflowClient: records the calls; the first one can be held to make a backlog."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.hold = hold

    def _record(self, name: str, **kwargs) -> None:
        if self.hold is not None:
            self.hold.wait(10)
        self.calls.append((name, kwargs))

    def create_run(self, experiment_id, run_name, tags):
        self._record("create_run", run_name=run_name, tags=tags)
        return type("Run", (), {"info": type("Info", (), {"run_id": f"run-{run_name}"})()})()

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._record("log_batch", run_id=run_id, metrics=list(metrics), params=list(params), tags=list(tags))

    def set_terminated(self, run_id, status):
        self._record("set_terminated", run_id=run_id, status=status)


class _Trial:
    def __init__(self, trial_id: str, experiment_tag: str = "") -> None:
        self.trial_id, self.config, self.last_result = trial_id, {"lr": 0.01, "architecture": "simple_cnn"}, {}
        self.experiment_tag = experiment_tag


def _epochs(callback, trial, epochs):
    for epoch in range(1, epochs + 1):
        trial.last_result = {"epoch": epoch, "val_auc": 0.5 + epoch / 10, "val_loss": 1.0 / epoch}
        callback.on_trial_result(epoch, [trial], trial, trial.last_result)


def test_epochs_that_pile_up_go_in_one_log_batch_and_none_is_lost(callback):
    """A backlog (here: the run's creation held) sends the waiting epochs with the next call."""
    hold = threading.Event()
    client = callback._runs.client = _RecordingClient(hold)
    trial = _Trial("t1")
    callback.on_trial_start(0, [trial], trial)
    _epochs(callback, trial, 3)
    hold.set()
    callback.on_trial_complete(3, [trial], trial)
    assert callback.finish() == []
    names = [name for name, _ in client.calls]
    assert names == ["create_run", "log_batch", "log_batch", "set_terminated"], names
    steps = [(m.key, m.step) for _, kw in client.calls if "metrics" in kw for m in kw["metrics"]]
    assert sorted(s for k, s in steps if k == "val_auc") == [1, 2, 3]  # each epoch once, none lost
    assert client.calls[1][1]["params"] and client.calls[2][1]["tags"]  # params with the first, outcome at the end


def test_an_idle_thread_sends_each_epoch_as_it_comes(callback):
    """Without a backlog nothing waits for company: each epoch is in MLflow before the next."""
    client = callback._runs.client = _RecordingClient()
    trial = _Trial("t1")

    def wait_for_calls(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(client.calls) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    callback.on_trial_start(0, [trial], trial)
    wait_for_calls(2)  # create_run, then its params
    for epoch in (1, 2):
        trial.last_result = {"epoch": epoch, "val_auc": 0.6}
        callback.on_trial_result(epoch, [trial], trial, trial.last_result)
        wait_for_calls(2 + epoch)
        assert [m.step for m in client.calls[-1][1]["metrics"]] == [epoch]
    assert callback.finish() == []


def test_metrics_held_through_an_outage_are_all_sent_when_it_ends(callback):
    client = _RecordingClient()
    failures = {"left": 2}

    def flaky_log_batch(run_id, metrics=(), params=(), tags=()):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("connection refused")
        client.calls.append(("log_batch", {"metrics": list(metrics)}))

    client.log_batch = flaky_log_batch
    callback._runs.client = client
    callback.run_ids["t1"] = "run-t1"
    trial = _Trial("t1")
    _epochs(callback, trial, 4)

    def sent() -> list[int]:
        return sorted(m.step for _, kw in client.calls for m in kw["metrics"] if m.key == "val_auc")

    deadline = time.monotonic() + 10
    while sent() != [1, 2, 3, 4] and time.monotonic() < deadline:  # retried without finish() asking
        time.sleep(0.02)
    assert callback.finish() == []
    assert sent() == [1, 2, 3, 4] and failures["left"] == 0


def test_the_closing_tags_hold_the_best_epoch_even_when_it_has_no_checkpoint(callback):
    """``medtune best`` ranks from ``medtune.best_<metric>``: the best over every epoch, as the
    leaderboard ranks; the logged checkpoint's epoch (long plans checkpoint sparsely) is its own tag."""
    client = callback._runs.client = _RecordingClient()
    trial = _Trial("t1", experiment_tag="8_architecture=simple_cnn,lr=0.0100")
    callback.on_trial_start(0, [trial], trial)
    for epoch, auc in ((1, 0.7), (2, 0.9), (3, 0.8)):
        trial.last_result = {"epoch": epoch, "val_auc": auc}
        callback.on_trial_result(epoch, [trial], trial, trial.last_result)
        if epoch in (1, 3):  # epoch 2, the best, was not checkpointed
            callback.on_checkpoint(epoch, [trial], trial, checkpoint=None)
    callback.on_trial_complete(3, [trial], trial)
    assert callback.finish() == []
    tags = {t.key: t.value for name, kw in client.calls if name == "log_batch" for t in kw["tags"]}
    assert (tags["medtune.best_val_auc"], tags["medtune.best_epoch"]) == ("0.9", "2")
    assert tags["medtune.best_checkpoint_epoch"] == "3"
    # ... and as metrics, which MLflow's runs table sorts by (its val_auc column is the last epoch's).
    metrics = {m.key: m.value for name, kw in client.calls if name == "log_batch" for m in kw["metrics"] if m.step == 0}
    assert metrics == {"best_val_auc": 0.9, "best_epoch": 2.0}
    # Named for the runs table: number, architecture, outcome (it ran its 3 epochs).
    # Numbered like Optuna's study (Tune's trial counter minus one), as optuna-dashboard and the plots number it.
    assert client.calls[0][1]["run_name"] == "07 simple_cnn" and tags["mlflow.runName"] == "07 simple_cnn done"


def test_a_tied_epoch_keeps_the_earlier_best_and_a_non_finite_value_never_counts():
    callback = MlflowTrialCallback("sqlite:///unused.db", "0", "parent", "val_loss", "min", 4)
    trial = _Trial("t1")
    for epoch, loss in ((1, float("nan")), (2, 0.5), (3, 0.5), (4, 0.7)):
        trial.last_result = {"epoch": epoch, "val_loss": loss}
        callback.on_trial_result(epoch, [trial], trial, trial.last_result)
        callback.on_checkpoint(epoch, [trial], trial, checkpoint=f"ckpt-{epoch}")
    assert callback._best.best["t1"] == (0.5, 2) and callback._best.checkpointed["t1"] == (0.5, 2)
    assert callback._best.pop_checkpoint("t1") == "ckpt-2"


@pytest.mark.parametrize("last_epoch, error, outcome, status, name", [
    (3, None, "completed", "FINISHED", "07 simple_cnn done"),
    (2, None, "stopped_early", "FINISHED", "07 simple_cnn stopped@2"),
    (1, "ValueError: bad", "failed", "FAILED", "07 simple_cnn failed"),
])
def test_a_trial_ends_with_its_outcome(callback, tmp_path, last_epoch, error, outcome, status, name):
    client = callback._runs.client = _RecordingClient()
    trial = _Trial("t1", experiment_tag="8_lr=0.01")
    callback.on_trial_start(0, [trial], trial)
    _epochs(callback, trial, last_epoch)
    if error is None:
        callback.on_trial_complete(last_epoch, [trial], trial)
    else:
        trial.error_file = tmp_path / "error.txt"
        trial.error_file.write_text(f"Traceback (most recent call last):\n  ...\n{error}\n\n")
        callback.on_trial_error(last_epoch, [trial], trial)
    assert callback.finish() == []
    tags = {t.key: t.value for call, kw in client.calls if call == "log_batch" for t in kw["tags"]}
    assert tags["medtune.outcome"] == outcome and tags["medtune.last_epoch"] == str(last_epoch)
    assert tags["mlflow.runName"] == name and client.calls[-1] == ("set_terminated", {"run_id": "run-07 simple_cnn",
                                                                                       "status": status})
    assert tags.get("medtune.stopped_at_epoch") == ("2" if outcome == "stopped_early" else None)
    assert tags.get("medtune.error") == error


def test_run_names_say_number_architecture_frozen_depth_and_outcome():
    assert trial_runs.trial_run_name(7, {"architecture": "mobilenetv2_100", "frozen_depth": 1}) == \
        "07 mobilenetv2_100 fd1"


def test_the_scheduled_learning_rate_is_not_logged_as_lr():
    """``lr`` is the searched param; the epoch's scheduled rate is a metric under another name."""
    keys = {m.key for m in trial_runs.metric_batch({"lr": 1e-4, "val_auc": 0.9}, step=3)}
    assert keys == {"lr_scheduled", "val_auc"}
