"""From a validated ``SweepSpec`` to a ``ray.tune.Tuner``, new or restored.

Only Ray Tune's own parts: ``OptunaSearch`` (TPE) behind a ``ConcurrencyLimiter``, the
``ASHAScheduler`` keyed on the counter of the budget's unit that the trial reports (``epoch``,
``step`` or ``images_seen``, so a trial resumed from a checkpoint keeps its place on ASHA's rungs),
``with_resources`` for per-trial CPUs and GPU fractions, ``CheckpointConfig`` scored on the
objective so the best checkpoint is never the one deleted, and ``reuse_actors`` because a new
trial process costs seconds on a small CPU sweep.

The driver reads some of the Tuner's parts back after ``fit`` (the MLflow callback, ASHA's rungs,
the fail-fast stopper, the Optuna study): ``SweepTuner`` keeps them next to the Tuner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from medtune.search.run._ray_compat import restored_tuner_parts
from medtune.search.run.asha_rungs import AshaRungs
from medtune.search.run.fail_fast import FailFast
from medtune.search.run.searcher import build_searcher
from medtune.search.run.storage import run_path_of, storage_path
from medtune.search.run.study import study_location
from medtune.search.run.trial_values import trial_fixed_values
from medtune.search.spec.sweep_spec import SpecError, SweepSpec, scheduler_metric
from medtune.trainables.budget import TIME_ATTR
from medtune.trainables.config import progress_params
from medtune.trainables.objective import PROGRESS_METRICS
from medtune.trainables.progress import progress_enabled
from medtune.trainables.train import tune_trainable

C = TypeVar("C", bound=tune.Callback)


def trial_dirname(trial: Any) -> str:
    """Short trial folders: Ray's default packs the whole config into the name."""
    return f"trial_{trial.trial_id}"


def build_scheduler(spec: SweepSpec) -> TrialScheduler:
    sched = spec.search.scheduler
    if sched.name == "fifo":
        return FIFOScheduler()
    # Keyed on the counter the budget is in (epoch, step, images_seen), as every report carries it.
    return ASHAScheduler(time_attr=TIME_ATTR[sched.unit], max_t=sched.max_t, grace_period=sched.grace_period,
                         reduction_factor=sched.reduction_factor, metric=scheduler_metric(spec),
                         mode=spec.metric.mode)


def trial_trainable(spec: SweepSpec, trainable: Callable[[dict[str, Any]], None] = tune_trainable) -> Any:
    """The trial function with its per-trial resources (CPUs, a GPU fraction) from the spec."""
    return tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


@dataclass
class SweepTuner:
    """A Tuner and the parts of it the driver reads back after ``fit``."""

    tuner: tune.Tuner
    callbacks: list[tune.Callback]  # those the Tuner runs with, in order
    search_alg: Searcher | None  # the ConcurrencyLimiter around medtune's OptunaSearch

    def callback(self, kind: type[C]) -> C | None:
        """The Tuner's callback of this kind, or None."""
        return next((c for c in self.callbacks if isinstance(c, kind)), None)


def sweep_tuner(spec: SweepSpec, run_name: str, callbacks: list[tune.Callback] | None = None,
                trainable: Callable[[dict[str, Any]], None] = tune_trainable) -> SweepTuner:
    """A new Tuner for the sweep, with ``callbacks`` (an ``AshaRungs`` is added under ASHA) and the
    stopper among them (``FailFast``), keeping references to its callbacks and searcher."""
    location = study_location(spec.search.sampler.storage, run_path_of(spec, run_name))
    searcher = ConcurrencyLimiter(build_searcher(spec, trial_fixed_values(spec), location, study_name=run_name),
                                  max_concurrent=spec.search.max_concurrent)
    stopper = next((c for c in callbacks or [] if isinstance(c, FailFast)), None)
    metric_columns = [c for c in PROGRESS_METRICS if c != spec.metric.name] + [spec.metric.name]
    if spec.search.scheduler.unit != "epochs":
        metric_columns.insert(1, TIME_ATTR[spec.search.scheduler.unit])
    if spec.search.cv:
        metric_columns.append(f"{spec.metric.name}_sem")
    if scheduler_metric(spec) != spec.metric.name:
        metric_columns.append(scheduler_metric(spec))
    parameter_columns = [p for p in progress_params() if p in spec.space]
    scheduler = build_scheduler(spec)
    callbacks = list(callbacks or [])
    if isinstance(scheduler, ASHAScheduler):
        callbacks.append(AshaRungs(scheduler))  # Tune saves callbacks, not the scheduler (medtune resume)
    tuner = tune.Tuner(
        trial_trainable(spec, trainable),
        # No metric here: the searcher and the scheduler are given theirs (they differ for trials
        # that race over folds), and Tune refuses a metric given twice.
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=spec.search.num_samples,
            time_budget_s=spec.search.time_budget_s,
            # The ConcurrencyLimiter above enforces max_concurrent (Tune warns if both are set).
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=storage_path(spec),
            callbacks=callbacks,
            stop=stopper,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=spec.search.checkpoints_to_keep,
                checkpoint_score_attribute=spec.metric.name,
                checkpoint_score_order=spec.metric.mode,
            ),
            failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
            progress_reporter=tune.CLIReporter(
                metric=spec.metric.name,
                mode=spec.metric.mode,
                metric_columns=metric_columns,
                parameter_columns=parameter_columns,
                max_report_frequency=30,
                # Tune sorts finished trials by the metric with None for trials that never
                # reported, and Python cannot order None against floats: a time budget that
                # stops a just-started trial made Tuner.fit raise at its last progress print.
                sort_by_metric=spec.search.time_budget_s is None,
            ),
            verbose=1 if progress_enabled() else 0,  # medtune -q: Tune's status table is progress too
        ),
    )
    return SweepTuner(tuner, callbacks, searcher)


def build_tuner(spec: SweepSpec, run_name: str, callbacks: list[tune.Callback] | None = None,
                trainable: Callable[[dict[str, Any]], None] = tune_trainable) -> tune.Tuner:
    """The Tuner alone of ``sweep_tuner`` (for callers that only fit it)."""
    return sweep_tuner(spec, run_name, callbacks, trainable).tuner


def restored_tuner(spec: SweepSpec, run_path: str) -> SweepTuner:
    """The sweep in ``run_path`` as Tune saved it: finished trials are kept, unfinished and errored
    ones continue from their last checkpoints; its callbacks and searcher come back with their state."""
    if not tune.Tuner.can_restore(run_path):
        raise SpecError(run_path, [("<run>", "Ray Tune finds no experiment state to restore there")])
    tuner = tune.Tuner.restore(run_path, trainable=trial_trainable(spec), resume_unfinished=True, resume_errored=True)
    # A new Tuner's callbacks and searcher are the objects medtune passed in (``sweep_tuner`` keeps
    # them); a restored one's are unpickled from the run folder's ``tuner.pkl`` and then given the
    # state Tune saved, and Ray has no public accessor for them (see ``_ray_compat``).
    callbacks, search_alg = restored_tuner_parts(tuner)
    return SweepTuner(tuner, callbacks, search_alg)
