"""The sweep's child runs in MLflow, one per trial: made or continued, fed metrics, and closed.

Every method that talks to MLflow runs on the logging thread (``_queue.RetryingQueue``), in the
order the callback queued it; a failure raises, and the queue retries the same call. Metrics are
the exception to one-call-per-event: the driver buffers each epoch's metrics here
(``add_metrics``) and the thread sends whatever has gathered in one ``log_batch``, with the run's
params at its creation, on their own, or with the tags at its end. When the thread falls behind (a
burst of short trials, a slow server, an outage) every epoch that piled up goes in one
transaction. Metrics leave the buffer only once MLflow has them, so a retried call carries them.

The client runs MLflow's store in a child process when the store would otherwise run on the
driver (``client_process``). Pickled (with the callback), the run map stays and the client, the
unsent metrics and the tracking URI's credentials stay behind.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.search.credentials import redact_uri
from medtune.search.locations import is_remote
from medtune.search.tracking.client import mlflow_client
from medtune.search.tracking.client_process import MlflowClientProcess, store_runs_in_process

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


class ChildRuns:
    """The child runs of one parent run, keyed by trial id (``run_ids``); warnings go to ``logger``."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str,
                 logger: logging.Logger | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.run_ids: dict[str, str] = {}
        self.restored = False  # a restored sweep may have child runs its saved state predates
        self._client: "MlflowClient | MlflowClientProcess | None" = None
        self._unsent: dict[str, list[Any]] = {}  # trial id -> metrics not yet in MLflow
        self._send_queued: set[str] = set()  # trials whose metrics a queued send will take along
        self._lock = threading.Lock()
        self._log = logger or log

    @property
    def client(self) -> "MlflowClient | MlflowClientProcess":
        """In a child process when the store would run in this one, else MLflow's own client."""
        if self._client is None:
            if store_runs_in_process(self.tracking_uri):
                self._client = MlflowClientProcess(self.tracking_uri)  # same methods, called over a pipe
            else:
                self._client = mlflow_client(self.tracking_uri)
        return self._client

    @client.setter
    def client(self, client: "MlflowClient | MlflowClientProcess") -> None:
        self._client = client

    def start_client(self) -> None:
        """Start the client's child process now, if it has one, while nothing trains yet
        (see ``MlflowClientProcess.start``); a failure is left to the queued calls' retries."""
        client = self.client
        if isinstance(client, MlflowClientProcess):
            try:
                client.start()
            except OSError as exc:  # logged calls retry it; trials must not wait for MLflow
                self._log.warning("could not start medtune's MLflow process: %s", exc)

    def close_client(self) -> None:
        if isinstance(self._client, MlflowClientProcess):
            self._client.close()

    def add_metrics(self, trial_id: str, metrics: list[Any]) -> bool:
        """Buffer one epoch's metrics (driver side); True when a ``send_metrics`` must be queued,
        False when one already queued will take them along."""
        with self._lock:
            self._unsent.setdefault(trial_id, []).extend(metrics)
            if trial_id in self._send_queued:
                return False
            self._send_queued.add(trial_id)
            return True

    # -- on the logging thread ---------------------------------------------------------------------
    def start(self, trial_id: str, run_name: str, tags: dict[str, str], params: dict[str, str]) -> None:
        """Create the trial's run with ``tags`` and then ``params``, or, for a trial restarted after
        a failure or a restore, set its existing run (whose creation may have been queued) running."""
        from mlflow.entities import Param

        run_id = self.run_ids.get(trial_id) or self._existing_run(trial_id)
        if run_id is not None:
            self.run_ids[trial_id] = run_id
            self.client.update_run(run_id, status="RUNNING")
            return
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.run_ids[trial_id] = run.info.run_id
        self._log_batch(trial_id, run.info.run_id, params=[Param(k, v) for k, v in params.items()])

    def send_metrics(self, trial_id: str) -> None:
        self._log_batch(trial_id, self.run_ids[trial_id])

    def set_tag(self, trial_id: str, key: str, value: str) -> None:
        self.client.set_tag(self.run_ids[trial_id], key, value)

    def close(self, trial_id: str, checkpoint: Any, tags: dict[str, str], metrics: list[Any], status: str) -> None:
        """Log the best checkpoint, then the unsent metrics with ``metrics`` and ``tags``, and end the run."""
        from mlflow.entities import RunTag

        run_id = self.run_ids[trial_id]
        self._log_checkpoint(trial_id, checkpoint, run_id)
        self._log_batch(trial_id, run_id, tags=[RunTag(k, v) for k, v in tags.items()], metrics=metrics)
        self.client.set_terminated(run_id, status=status)

    def _existing_run(self, trial_id: str) -> str | None:
        """A child run made for this trial before the sweep was restored (the state Tune saved may
        predate it). Only a restored sweep can have one, so only it asks the server."""
        if not self.restored:
            return None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' AND "
                          f"tags.`medtune.trial_id` = '{trial_id}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def _log_batch(self, trial_id: str, run_id: str, **batch: Any) -> None:
        """One log_batch of ``batch`` (params, tags, metrics of the run's end) plus every metric of
        the trial not yet sent; nothing when there is nothing to send."""
        with self._lock:
            self._send_queued.discard(trial_id)  # metrics reported from now on queue a new send
            metrics = list(self._unsent.get(trial_id, ()))
        extra = list(batch.pop("metrics", ()))
        if not metrics and not extra and not any(batch.values()):
            return
        self.client.log_batch(run_id, metrics=metrics + extra, **batch)
        with self._lock:
            unsent = self._unsent.get(trial_id, [])
            del unsent[:len(metrics)]
            if not unsent:
                self._unsent.pop(trial_id, None)

    def _log_checkpoint(self, trial_id: str, checkpoint: Any, run_id: str) -> None:
        """The checkpoint's weights, config and metrics (Ray's own checkpoint keeps what a resume
        needs) under ``best_checkpoint/``. An unreadable or vanished checkpoint is skipped with a
        warning (retrying cannot help); any other OSError is the server's and raises."""
        if checkpoint is None:
            return
        from medtune.trainables.weights_export import export_weights

        try:
            with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory(prefix="medtune-weights-") as lean:
                try:
                    export_weights(folder, lean)
                except (RuntimeError, KeyError, ValueError) as exc:
                    self._log.warning("the best checkpoint of trial %s could not be read (%s); not logged",
                                      trial_id, exc)
                    return
                self.client.log_artifacts(run_id, lean, artifact_path="best_checkpoint")
        except (FileNotFoundError, OSError) as exc:
            if not Path(getattr(checkpoint, "path", "")).exists() and not is_remote(getattr(checkpoint, "path", "")):
                self._log.warning("the best checkpoint of trial %s is gone (%s); not logged", trial_id, exc)
                return
            raise  # the server is away: keep it queued

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(tracking_uri=redact_uri(self.tracking_uri),  # resume_sweep gives the secret back
                     _client=None, _unsent={}, _send_queued=set(), _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
