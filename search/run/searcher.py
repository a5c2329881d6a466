"""The Optuna sampler behind the sweep, as a Ray Tune searcher.

Ray Tune's ``OptunaSearch`` tells Optuna every trial that ends with a result as COMPLETE, with
the value of its *last* epoch. A trial that ASHA stopped after one epoch would then enter TPE's
model as if one epoch were a full budget, and TPE would learn "short training is bad" rather than
"this configuration is bad". ``MedtuneOptunaSearch`` tells such trials to Optuna as PRUNED
instead: Optuna's TPE ranks pruned trials by how far they got and their last intermediate value
(the per-epoch values that ``OptunaSearch.on_trial_result`` already reports), which is how Optuna's
own pruners feed TPE. Trials that ran their full budget are told as COMPLETE with their best
value over epochs, the same number the best checkpoint is chosen by. Whether a trial stopped early
is ``medtune.trainables.budget.stopped_early``, the test the leaderboard and the plots use too.

A cross-validated trial that races over folds reports its objective only once every fold trains
(NaN before); its intermediate values are then its estimate over the folds trained so far
(``<objective>_race``), which is what ASHA compared it by at every rung.

``OptunaSearch`` keeps its study, its Tune-to-Optuna trial map and the trials already told in
private attributes; they are reached only through ``medtune.search.run._ray_compat``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from medtune.search.run._ray_compat import optuna_search_study, optuna_search_told, optuna_search_trials
from medtune.search.spec.space import DefineByRunSpace
from medtune.search.spec.sweep_spec import SweepSpec, epoch_plan, trial_stage_counts
from medtune.trainables.budget import stopped_early
from medtune.trainables.objective import EPOCH, Objective, race_metric

log = logging.getLogger(__name__)

#: Optuna's default number of random trials before TPE models the space is 10; small sweeps would
#: spend almost everything at random, so medtune caps it at a third of the samples (at least 3).
DEFAULT_STARTUP_CAP = 10


class MedtuneOptunaSearch(OptunaSearch):
    """OptunaSearch that reports ASHA-stopped trials as pruned and finished ones by their best epoch."""

    def __init__(self, *args: Any, max_epochs: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_epochs = max_epochs  # the epoch plan of results that carry no epochs_total
        self._best_values: dict[str, float] = {}
        self._last_results: dict[str, dict[str, Any]] = {}

    @property
    def study(self) -> optuna.Study | None:
        """The study the trials were told to (None before Tune set the searcher up)."""
        return optuna_search_study(self)

    @property
    def objective(self) -> Objective:
        """The metric and mode Tune gave the searcher (read each time: Tune may set them after ``__init__``)."""
        return Objective(self.metric, self.mode)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value):
            best = self._best_values.get(trial_id)
            if best is None or self.objective.better(value, best):
                self._best_values[trial_id] = float(value)
        self._last_results[trial_id] = {k: result.get(k) for k in (EPOCH, "epochs_total", TRAINING_ITERATION)
                                        if k in result}
        intermediate = result.get(race_metric(self.metric), value)
        if isinstance(intermediate, (int, float)) and math.isfinite(intermediate):
            super().on_trial_result(trial_id, {**result, self.metric: intermediate})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        told, ot_trials = optuna_search_told(self), optuna_search_trials(self)
        if trial_id in told or trial_id not in ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        if not error and result and self.metric in result and TRAINING_ITERATION in result and \
                result[TRAINING_ITERATION] != (self._last_results.get(trial_id) or {}).get(TRAINING_ITERATION):
            # A result on which the scheduler stopped the trial (ASHA at a rung, or at max_t) reaches
            # the searcher only here, never through on_trial_result: count it as the epoch it is.
            self.on_trial_result(trial_id, result)
        last = self._last_results.get(trial_id)
        best = self._best_values.get(trial_id)
        ot_trial = ot_trials[trial_id]
        if error or best is None:
            state, value = (TrialState.FAIL, None) if error else (TrialState.PRUNED, None)
        elif stopped_early(last, self._max_epochs):
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.COMPLETE, best
        study = optuna_search_study(self)  # outside the try: a moved internal must not pass as a warning
        try:
            study.tell(ot_trial, value, state=state)
        except Exception as exc:  # e.g. a trial already told
            log.warning("could not tell Optuna about trial %s: %s", trial_id, exc)
        told.add(trial_id)


def build_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """The sampler ``search.sampler`` names: random, grid over the choices, or TPE (seeded)."""
    sampler = spec.search.sampler
    if sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=sampler.seed)
    if sampler.name == "grid":
        return optuna.samplers.GridSampler({k: list(d.values) for k, d in spec.space.items()}, seed=sampler.seed)
    startup = sampler.n_startup_trials
    if startup is None:
        startup = min(DEFAULT_STARTUP_CAP, max(3, spec.search.num_samples // 3))
    return optuna.samplers.TPESampler(seed=sampler.seed, n_startup_trials=startup)


def build_searcher(spec: SweepSpec, fixed_for_trials: dict[str, Any], study_location: str | None = None,
                   study_name: str | None = None) -> MedtuneOptunaSearch:
    """The searcher; its study is stored at ``study_location`` (``medtune.search.run.study``) or kept in memory."""
    from medtune.search.run.study import open_storage

    space = DefineByRunSpace(spec.space, fixed_for_trials, trial_stage_counts(spec))
    return MedtuneOptunaSearch(
        space=space,
        metric=spec.metric.name,
        mode=spec.metric.mode,
        sampler=build_sampler(spec),
        max_epochs=epoch_plan(spec),
        storage=open_storage(study_location) if study_location else None,
        study_name=study_name,
    )
