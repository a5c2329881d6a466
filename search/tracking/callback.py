"""MLflow logging for a sweep, all on the driver side.

One parent run per sweep; one child run per trial, nested under it with MLflow's
``mlflow.parentRunId`` tag. The child run follows its trial (Ray Tune callback hooks): params at
start (flat trial-config keys, the same in every child so MLflow's compare view lines them up),
metrics after every epoch with the epoch as the step, and at the end the trial's best checkpoint
as an artifact plus its outcome (completed, stopped early by ASHA at epoch k, failed with the error).

Ray's own ``MLflowLoggerCallback`` creates no parent run and logs no checkpoint, so medtune keeps
its own small callback on MLflow's client API. A restarted trial (after a failure, or after
``Tuner.restore``) continues its run instead of starting a duplicate: the trial-to-run map is part
of the callback's state that Tune saves with the experiment.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ray import tune

from medtune.search.credentials import redact_uri
from medtune.search.tracking.client_process import MlflowClientProcess, store_runs_in_process
from medtune.search.tracking.client import mlflow_client
from medtune.search.tracking.run_tags import run_tags
from medtune.search.tracking.trial_runs import metric_batch, study_number, trial_params, trial_run_name
from medtune.trainables.budget import stopped_early

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from ray.tune.experiment import Trial

log = logging.getLogger(__name__)

#: While the tracking server is unreachable, queued MLflow calls are retried at most this often.
RETRY_INTERVAL_S = int(os.environ.get("MEDTUNE_MLFLOW_RETRY_S", "15"))
class MlflowTrialCallback(tune.Callback):
    """Mirrors every Tune trial into a child run of the sweep's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, metric: str, mode: str,
                 max_epochs: int | None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.metric, self.mode, self.max_epochs = metric, mode, max_epochs
        self.context_tags = run_tags()  # resolved once, on the driver: the same for every trial
        self.run_ids: dict[str, str] = {}
        self.best: dict[str, tuple[float, int]] = {}  # trial id -> (best metric value, its epoch)
        self.checkpointed: dict[str, tuple[float, int]] = {}  # the same among epochs with a checkpoint
        self.best_checkpoint: dict[str, Any] = {}
        self.restarts: dict[str, int] = {}
        self.numbers: dict[str, int] = {}  # trial id -> its Optuna trial number (0, 1, ...)
        self.seconds_logging = 0.0  # time the logging thread spent in MLflow calls (benchmarks/mlflow_overhead.py)
        self.results_logged = 0
        self._pending: deque[tuple[str, Callable[[], None]]] = deque()
        # Metrics not yet sent, per trial, and the trials with a send already queued: the logging
        # thread sends whatever has gathered in one log_batch (see ``_log_batch_with_unsent``).
        self._unsent: dict[str, list[Any]] = {}
        self._send_queued: set[str] = set()
        self._offline = False
        self._restored = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Condition()
        self._client: "MlflowClient | None" = None

    @property
    def client(self) -> "MlflowClient":
        """The logging thread's client: in a child process when the store would run in this one
        (sqlite, a database, files; see ``medtune.search.tracking.client_process``), else MLflow's own."""
        if self._client is None:
            if store_runs_in_process(self.tracking_uri):
                self._client = MlflowClientProcess(self.tracking_uri)  # same methods, called over a pipe
            else:
                self._client = mlflow_client(self.tracking_uri)
        return self._client

    def setup(self, **info: Any) -> None:
        """Tune calls this before the first trial: a child process for MLflow is started now,
        while nothing trains yet (see ``MlflowClientProcess.start``)."""
        client = self.client
        if isinstance(client, MlflowClientProcess):
            try:
                client.start()
            except OSError as exc:  # logged calls retry it; trials must not wait for MLflow
                log.warning("could not start medtune's MLflow process: %s", exc)

    # -- state saved with the experiment, so a restored sweep continues the same runs ---------------
    def get_state(self) -> dict[str, Any]:
        # Checkpoints are (path, filesystem) handles and pickle with the state: a trial resumed
        # after a restore still logs its best checkpoint from before the interruption.
        return {"run_ids": dict(self.run_ids), "best": dict(self.best), "checkpointed": dict(self.checkpointed),
                "numbers": dict(self.numbers),
                "best_checkpoint": dict(self.best_checkpoint), "restarts": dict(self.restarts)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._restored = True
        self.run_ids.update(state.get("run_ids", {}))
        self.best.update(state.get("best", {}))
        self.checkpointed.update(state.get("checkpointed", {}))
        self.numbers.update(state.get("numbers", {}))
        self.best_checkpoint.update(state.get("best_checkpoint", {}))
        self.restarts.update(state.get("restarts", {}))

    def _existing_child_run(self, trial_id: str) -> str | None:
        """A child run already made for this trial before the sweep was restored (the state Tune
        saved may predate it). Only a restored sweep can have one, so only it asks the server."""
        if not self._restored:
            return None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' AND tags.`medtune.trial_id` = '{trial_id}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    # -- MLflow calls, on a background thread -----------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the Tuner (tuner.pkl): threads, locks and clients stay behind.
        state = dict(self.__dict__)
        state["tracking_uri"] = redact_uri(self.tracking_uri)  # resume_sweep gives the secret back
        for key in ("_client", "_thread", "_wake"):
            state[key] = None
        state["_pending"] = deque()
        state["_unsent"], state["_send_queued"] = {}, set()
        state["_stopping"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._wake = threading.Condition()

    def _call(self, description: str, operation: Callable[[], None]) -> None:
        """Queue ``operation`` for the logging thread and return at once.

        Tune's event loop (results, scheduling, the searcher) never waits for MLflow: a sqlite
        transaction or an HTTP round trip per call would otherwise be paid on the driver for every
        epoch of every trial (benchmarks/bookkeeping.py measured 54 s of 143 s at 1,000 trials).
        Operations run in order on one thread; while the tracking server is unreachable that thread
        retries the head of the queue at most every ``RETRY_INTERVAL_S``. The user sees one warning
        when the server goes away and one when it is back; what is still queued when the sweep ends
        is retried once more and otherwise reported by ``finish``.
        """
        with self._wake:
            self._pending.append((description, operation))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="medtune-mlflow", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if not self._pending:
                    return
                description, operation = self._pending[0]
            started = time.perf_counter()
            try:
                operation()
            except Exception as exc:
                self.seconds_logging += time.perf_counter() - started
                if not self._offline:
                    self._offline = True
                    # One warning from medtune, not one from urllib3 per queued call.
                    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
                    log.warning("MLflow tracking server %s is unreachable (%s: %s). Trials keep training; "
                                "medtune queues what it cannot log and retries every %d s.",
                                redact_uri(self.tracking_uri), type(exc).__name__,
                                str(exc).splitlines()[0][:200] if str(exc) else "", RETRY_INTERVAL_S)
                with self._wake:
                    if self._stopping:  # the sweep is over and this was the last try
                        return
                    self._wake.wait(RETRY_INTERVAL_S)  # finish() wakes it for one more try
                continue
            self.seconds_logging += time.perf_counter() - started
            with self._wake:
                self._pending.popleft()
                left = len(self._pending)
            if self._offline:
                self._offline = False
                logging.getLogger("urllib3.connectionpool").setLevel(logging.NOTSET)
                log.warning("MLflow tracking server %s is back; logging the %d operations queued meanwhile.",
                            redact_uri(self.tracking_uri), left + 1)

    def finish(self) -> list[str]:
        """Wait for the logging thread to drain its queue (one more try if the server is away);
        the descriptions of what could not be logged."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._thread, self._stopping = None, False
        if isinstance(self._client, MlflowClientProcess):
            self._client.close()
        return [description for description, _ in self._pending]

    def _log_batch_with_unsent(self, trial_id: str, run_id: str, **batch: Any) -> None:
        """One log_batch of ``batch`` (params, tags) plus every metric of the trial not yet sent.

        Runs on the logging thread. Metrics are gathered rather than sent one call per epoch: when
        the thread falls behind (a burst of short trials, a slow server, an outage) every epoch that
        piled up goes in one transaction, and the run's creation and its end each carry along what
        gathered before them. benchmarks/bookkeeping.py: 7 MLflow transactions per 3-epoch trial
        became about 4. Metrics leave the buffer only once MLflow has them, so a failed call is
        retried with them.
        """
        with self._wake:
            self._send_queued.discard(trial_id)  # metrics reported from now on queue a new send
            metrics = list(self._unsent.get(trial_id, ()))
        extra = list(batch.pop("metrics", ()))  # metrics of the run's end (best value and epoch)
        if not metrics and not extra and not any(batch.values()):
            return
        self.client.log_batch(run_id, metrics=metrics + extra, **batch)
        with self._wake:
            unsent = self._unsent.get(trial_id, [])
            del unsent[:len(metrics)]
            if not unsent:
                self._unsent.pop(trial_id, None)

    # -- hooks -----------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        from mlflow.entities import Param

        trial_id = trial.trial_id
        params = [Param(k, v) for k, v in trial_params(trial.config).items()]
        architecture = str(trial.config.get("architecture"))
        self.numbers.setdefault(trial_id, study_number(getattr(trial, "experiment_tag", ""), len(self.numbers)))
        run_name = trial_run_name(self.numbers[trial_id], trial.config)

        def start_or_continue() -> None:
            # Decided on the logging thread, in order: a trial restarted after a failure or a
            # restore continues its run (whose creation may still have been queued).
            run_id = self.run_ids.get(trial_id) or self._existing_child_run(trial_id)
            if run_id is not None:
                self.run_ids[trial_id] = run_id
                self.client.update_run(run_id, status="RUNNING")
                return
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags={
                **self.context_tags, "mlflow.parentRunId": self.parent_run_id, "medtune.trial_id": trial_id,
                "medtune.architecture": architecture, "medtune.outcome": "running"})
            self.run_ids[trial_id] = run.info.run_id
            self._log_batch_with_unsent(trial_id, run.info.run_id, params=params)

        self._call(f"create run of trial {trial_id}", start_or_continue)

    def on_trial_result(self, iteration: int, trials: list["Trial"], trial: "Trial", result: dict, **info: Any) -> None:
        trial_id = trial.trial_id
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        self.results_logged += 1
        if self._better(self.best.get(trial_id), result.get(self.metric)):  # every epoch, checkpointed or not
            self.best[trial_id] = (float(result[self.metric]), step)
        with self._wake:
            self._unsent.setdefault(trial_id, []).extend(metric_batch(result, step))
            if trial_id in self._send_queued:
                return  # the send already queued takes this epoch along
            self._send_queued.add(trial_id)

        self._call(f"metrics of trial {trial_id} from epoch {step}",
                   lambda: self._log_batch_with_unsent(trial_id, self.run_ids[trial_id]))

    def on_checkpoint(self, iteration: int, trials: list["Trial"], trial: "Trial", checkpoint: Any, **info: Any) -> None:
        # Tune processes a checkpoint right after the result it came with: pair them.
        result = trial.last_result or {}
        value = result.get(self.metric)
        if self._better(self.checkpointed.get(trial.trial_id), value):
            self.checkpointed[trial.trial_id] = (float(value), int(result.get("epoch", 0)))
            self.best_checkpoint[trial.trial_id] = checkpoint

    def _better(self, best: tuple[float, int] | None, value: Any) -> bool:
        """Whether ``value`` beats the (value, epoch) so far; ties keep the earlier epoch."""
        if not isinstance(value, (int, float)) or math.isnan(value):
            return False
        return best is None or (value < best[0] if self.mode == "min" else value > best[0])

    def on_trial_recover(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        """A failed trial (lost node, killed worker) that Tune retries from its last checkpoint."""
        trial_id = trial.trial_id
        self.restarts[trial_id] = self.restarts.get(trial_id, 0) + 1
        count = str(self.restarts[trial_id])
        log.warning("trial %s failed and restarts from its last checkpoint (restart %s): %s", trial_id, count,
                    _error_message(trial))
        self._call(f"restart tag of trial {trial_id}",
                   lambda: self.client.set_tag(self.run_ids[trial_id], "medtune.restarts", count))

    def on_trial_complete(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._finish(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._finish(trial, failed=True)

    def _finish(self, trial: "Trial", failed: bool) -> None:
        from mlflow.entities import RunTag

        trial_id = trial.trial_id
        last_result = trial.last_result or {}
        last_epoch = int(last_result.get("epoch", 0))
        tags = {"medtune.last_epoch": str(last_epoch)}
        if failed:
            tags["medtune.outcome"] = "failed"
            tags["medtune.error"] = _error_message(trial)
            status = "FAILED"
        elif stopped_early(last_result, self.max_epochs):
            tags["medtune.outcome"] = "stopped_early"
            tags["medtune.stopped_at_epoch"] = str(last_epoch)
            status = "FINISHED"
        else:
            tags["medtune.outcome"] = "completed"
            status = "FINISHED"
        if trial_id in self.best:  # what the leaderboard ranks by, and what `medtune best` reads
            value, epoch = self.best[trial_id]
            tags["medtune.best_epoch"] = str(epoch)
            tags[f"medtune.best_{self.metric}"] = repr(value)
        outcome = {"failed": "failed", "stopped_early": f"stopped@{last_epoch}"}.get(tags["medtune.outcome"], "done")
        number = self.numbers.get(trial_id)  # what the runs table shows
        tags["mlflow.runName"] = f"{trial_run_name(number, trial.config) if number is not None else trial_id} {outcome}"
        if trial_id in self.checkpointed:  # the epoch of the checkpoint logged under best_checkpoint/
            tags["medtune.best_checkpoint_epoch"] = str(self.checkpointed[trial_id][1])
        checkpoint = self.best_checkpoint.pop(trial_id, None)

        # The best value and its epoch as metrics too: MLflow's runs table sorts and plots metrics, and
        # its metric columns show the last epoch's value, which is not the best when a trial peaked early.
        best_metrics = []
        if trial_id in self.best:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            value, epoch = self.best[trial_id]
            best_metrics = [Metric(f"best_{self.metric}", value, now, 0), Metric("best_epoch", float(epoch), now, 0)]

        def close() -> None:
            run_id = self.run_ids[trial_id]
            self._log_best_checkpoint(trial_id, checkpoint, run_id)
            self._log_batch_with_unsent(trial_id, run_id, tags=[RunTag(k, v) for k, v in tags.items()],
                                        metrics=best_metrics)
            self.client.set_terminated(run_id, status=status)

        self._call(f"checkpoint, outcome and end of trial {trial_id}", close)

    def _log_best_checkpoint(self, trial_id: str, checkpoint: Any, run_id: str) -> None:
        if checkpoint is None:
            return
        from medtune.trainables.weights_export import export_weights

        try:
            with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory(prefix="medtune-weights-") as lean:
                # weights, config and metrics only: Ray's own checkpoint keeps what resume needs
                try:
                    export_weights(folder, lean)
                except (RuntimeError, KeyError, ValueError) as exc:  # unreadable: retrying cannot help
                    log.warning("the best checkpoint of trial %s could not be read (%s); not logged", trial_id, exc)
                    return
                self.client.log_artifacts(run_id, lean, artifact_path="best_checkpoint")
        except (FileNotFoundError, OSError) as exc:
            if not Path(getattr(checkpoint, "path", "")).exists() and "://" not in str(getattr(checkpoint, "path", "")):
                log.warning("the best checkpoint of trial %s is gone (%s); not logged", trial_id, exc)
                return
            raise  # the server is away: keep it queued


def _error_message(trial: "Trial") -> str:
    path = getattr(trial, "error_file", None)
    text = ""
    if path and Path(path).is_file():
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return (text or "trial failed (see the Ray trial log)")[:500]
