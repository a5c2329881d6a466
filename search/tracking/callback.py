"""MLflow logging for a sweep's trials: a Ray Tune callback that mirrors each trial as a child run.

One parent run per sweep (made by the driver before the Tuner); one child run per trial, nested
under it with MLflow's ``mlflow.parentRunId`` tag. The child run follows its trial: params at
start (flat trial-config keys, the same in every child so MLflow's compare view lines them up),
metrics after every epoch with the epoch as the step, and at the end the trial's best checkpoint
as an artifact plus its outcome (completed, stopped early by ASHA at epoch k, failed with the error).

Ray's own ``MLflowLoggerCallback`` creates no parent run and logs no checkpoint, so medtune keeps
its own, shaped like Ray's: a thin callback whose hooks translate Tune's events, over private
pieces that do the work. ``_queue.RetryingQueue`` runs the MLflow calls in order on a background
thread (Tune's event loop never waits for MLflow) and waits out an unreachable server;
``_child_runs.ChildRuns`` makes those calls; ``_best.BestEpochs`` keeps each trial's best epoch and
checkpoint; ``trial_runs`` names the runs and decides their outcome and closing tags.

A restarted trial (after a failure, or after ``Tuner.restore``) continues its run instead of
starting a duplicate: the trial-to-run map is part of the callback's state that Tune saves with the
experiment. The pickled callback holds no credentials; ``resume_sweep`` sets ``tracking_uri`` again.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from ray import tune

from medtune.search.credentials import redact_uri
from medtune.search.tracking._best import BestEpochs
from medtune.search.tracking._child_runs import ChildRuns
from medtune.search.tracking._queue import RetryingQueue
from medtune.search.tracking.run_tags import TRIAL_ID_TAG, run_tags
from medtune.search.tracking.trial_runs import (
    TrialOutcome,
    best_metrics,
    closing_tags,
    metric_batch,
    run_status,
    study_number,
    trial_error_message,
    trial_params,
    trial_run_name,
)
from medtune.trainables.objective import EPOCH, Objective

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

log = logging.getLogger(__name__)


class MlflowTrialCallback(tune.Callback):
    """Mirrors every Tune trial into a child run of the sweep's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, metric: str, mode: str,
                 max_epochs: int | None) -> None:
        self.metric, self.mode, self.max_epochs = metric, mode, max_epochs
        self.context_tags = run_tags()  # resolved once, on the driver: the same for every trial
        self.numbers: dict[str, int] = {}  # trial id -> its Optuna trial number (0, 1, ...)
        self.restarts: dict[str, int] = {}
        self.results_logged = 0
        self._best = BestEpochs(Objective(metric, mode))
        self._runs = ChildRuns(tracking_uri, experiment_id, parent_run_id, log)
        self._queue = RetryingQueue(redact_uri(tracking_uri), log)

    @property
    def tracking_uri(self) -> str:
        return self._runs.tracking_uri

    @tracking_uri.setter
    def tracking_uri(self, uri: str) -> None:  # resume_sweep: the pickled callback holds it without credentials
        self._runs.tracking_uri = uri
        self._queue.target = redact_uri(uri)

    @property
    def seconds_logging(self) -> float:
        """Time the logging thread has spent in MLflow calls (the sweep reports it)."""
        return self._queue.seconds_busy

    @property
    def run_ids(self) -> dict[str, str]:
        """Trial id -> its child run's id."""
        return self._runs.run_ids

    def finish(self) -> list[str]:
        """Wait for the logging thread to drain its queue (one more try if the server is away);
        the descriptions of what could not be logged."""
        unlogged = self._queue.finish()
        self._runs.close_client()
        return unlogged

    # -- state saved with the experiment, so a restored sweep continues the same runs ---------------
    def get_state(self) -> dict[str, Any]:
        return {"run_ids": dict(self._runs.run_ids), **self._best.get_state(), "numbers": dict(self.numbers),
                "restarts": dict(self.restarts)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._runs.restored = True
        self._runs.run_ids.update(state.get("run_ids", {}))
        self._best.set_state(state)
        self.numbers.update(state.get("numbers", {}))
        self.restarts.update(state.get("restarts", {}))

    # -- hooks -----------------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        """Before the first trial: MLflow's child process, if any, starts while nothing trains yet."""
        self._runs.start_client()

    def on_trial_start(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        trial_id = trial.trial_id
        tag = getattr(trial, "experiment_tag", "")
        number = self.numbers.setdefault(trial_id, study_number(tag, len(self.numbers)))
        tags = {**self.context_tags, "mlflow.parentRunId": self._runs.parent_run_id, TRIAL_ID_TAG: trial_id,
                "medtune.architecture": str(trial.config.get("architecture")), "medtune.outcome": "running"}
        self._queue.put(f"create run of trial {trial_id}", partial(
            self._runs.start, trial_id, trial_run_name(number, trial.config), tags, trial_params(trial.config)))

    def on_trial_result(self, iteration: int, trials: list["Trial"], trial: "Trial", result: dict, **info: Any) -> None:
        trial_id = trial.trial_id
        step = int(result.get(EPOCH, result.get("training_iteration", 0)))
        self.results_logged += 1
        self._best.add_result(trial_id, result, step)
        if self._runs.add_metrics(trial_id, metric_batch(result, step)):  # else a queued send takes them along
            self._queue.put(f"metrics of trial {trial_id} from epoch {step}",
                            partial(self._runs.send_metrics, trial_id))

    def on_checkpoint(self, iteration: int, trials: list["Trial"], trial: "Trial", checkpoint: Any,
                      **info: Any) -> None:
        # Tune processes a checkpoint right after the result it came with: pair them.
        self._best.add_checkpoint(trial.trial_id, trial.last_result or {}, checkpoint)

    def on_trial_recover(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        """A failed trial (lost node, killed worker) that Tune retries from its last checkpoint."""
        trial_id = trial.trial_id
        self.restarts[trial_id] = self.restarts.get(trial_id, 0) + 1
        count = str(self.restarts[trial_id])
        log.warning("trial %s failed and restarts from its last checkpoint (restart %s): %s", trial_id, count,
                    trial_error_message(trial))
        self._queue.put(f"restart tag of trial {trial_id}",
                        partial(self._runs.set_tag, trial_id, "medtune.restarts", count))

    def on_trial_complete(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._close(trial, TrialOutcome.of(trial.last_result, self.max_epochs))

    def on_trial_error(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        self._close(trial, TrialOutcome.of(trial.last_result, self.max_epochs, error=trial_error_message(trial)))

    def _close(self, trial: "Trial", outcome: TrialOutcome) -> None:
        trial_id = trial.trial_id
        number = self.numbers.get(trial_id)  # what the runs table shows
        name = trial_run_name(number, trial.config) if number is not None else trial_id
        best = self._best.best.get(trial_id)
        tags = closing_tags(outcome, name, self.metric, best, self._best.checkpoint_epoch(trial_id))
        self._queue.put(f"checkpoint, outcome and end of trial {trial_id}", partial(
            self._runs.close, trial_id, self._best.pop_checkpoint(trial_id), tags, best_metrics(self.metric, best),
            run_status(outcome)))
