"""``param_importances.png``: how much of the objective's variance each searched parameter explains,
by fANOVA over the study's finished trials, with a "not reliable" caveat when they are too few.

Importances fitted to a handful of trials let an irrelevant parameter explain the objective as well
as the one that matters, so below ``importance_caveat``'s counts the figure says so in its title and
hatches its bars rather than staying silent as Optuna's own plot does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from medtune.search.results.plots._study import trials
from medtune.search.results.plots._style import FIGSIZE, pyplot, stopped_label, wrap
from medtune.search.spec.sweep_spec import SweepSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: Parameter importances below these counts carry a "not reliable" caveat (``importance_caveat``).
MIN_FINISHED_FOR_IMPORTANCES = 10
MIN_FINISHED_PER_PARAM = 2


def importance_caveat(finished: int, params: int) -> str | None:
    """Why importances from ``finished`` COMPLETE trials over ``params`` searched values are not to be trusted.

    The importances are fitted to finished trials only (ASHA-stopped ones stopped at different
    epochs and are not comparable), and few points let an irrelevant parameter take a large share
    or outrank the one that matters. Hence at least ``MIN_FINISHED_FOR_IMPORTANCES`` (also Optuna's
    default number of random trials before TPE trusts its own model) and ``MIN_FINISHED_PER_PARAM``
    per searched parameter, since each parameter needs points that differ in it alone.
    """
    needed = max(MIN_FINISHED_FOR_IMPORTANCES, MIN_FINISHED_PER_PARAM * params)
    if finished >= needed:
        return None
    return f"from only {finished} finished trials (fewer than {needed}): not reliable"


def importance_evaluator() -> tuple[Any, str]:
    """fANOVA (seeded) and its name for the caption.

    Named explicitly rather than left to Optuna: Optuna 5's default, PED-ANOVA, ranks parameters by
    how they reach the top 10% of trials and wants at least 5 trials there, about 50 finished
    trials, more than most sweeps here finish. The seed keeps the figure the same when it is drawn
    again. Without scikit-learn (fANOVA's random forest) PED-ANOVA is the fallback, and the caption says so.
    """
    import importlib.util

    import optuna

    if importlib.util.find_spec("sklearn") is None:
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA (scikit-learn is missing for fANOVA)"
    return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"


def importance_study(study: Any, spec: SweepSpec) -> Any:
    """The study's finished trials with one range per parameter: the spec's.

    ``frozen_depth`` is asked for in a range that depends on the architecture (``medtune.search.spec.space``),
    and Optuna's importances leave out any parameter whose range differs between trials, so in a
    sweep over simple_cnn and a ResNet the frozen depth would silently drop out of the ranking.
    Every value lies inside the spec's range, so the trials are copied into a study that gives
    each parameter that range. A study that does not fit the spec (it changed on resume) is used as it is.
    """
    import optuna

    ranges = {name: dist.to_optuna() for name, dist in spec.space.items()}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created" line in the sweep's log
    try:
        copy = optuna.create_study(direction=study.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    try:
        for trial in trials(study, "COMPLETE"):
            params = {k: v for k, v in trial.params.items() if k in ranges}
            copy.add_trial(optuna.trial.create_trial(params=params, distributions={k: ranges[k] for k in params},
                                                     value=trial.value))
    except ValueError as exc:
        log.info("parameter importances use the study's own ranges: %s", exc)
        return study
    return copy


def param_importances_figure(study: Any, spec: SweepSpec) -> "Figure":
    """How much of the objective's variance over finished trials each searched parameter explains,
    with a "not reliable" caveat in the title (and hatched bars) below ``importance_caveat``'s counts."""
    import optuna

    plt = pyplot()
    metric = spec.metric.name
    complete, pruned = trials(study, "COMPLETE"), trials(study, "PRUNED")
    evaluator, evaluator_name = importance_evaluator()
    importances = optuna.importance.get_param_importances(importance_study(study, spec), evaluator=evaluator)
    caveat = importance_caveat(len(complete), len(spec.space))
    names = list(importances)[::-1]  # the most important on top
    values = [float(importances[n]) for n in names]
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], max(3.2, 1.6 + 0.45 * len(names))), layout="constrained")
    bars = ax.barh(names, values, color="0.82" if caveat else "0.45", edgecolor="0.3",
                   hatch="//" if caveat else None)
    ax.bar_label(bars, labels=[f"{v:.2f}" if v >= 0.005 else "<0.01" for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, max(values + [0.0]) * 1.15 or 1)
    lines = [f"{spec.name}: importance of each parameter for {metric}",
             f"{evaluator_name} over {len(complete)} finished trials ({len(pruned)} {stopped_label(spec)} left out)"]
    unranked = [name for name in spec.space if name not in importances]
    if unranked:  # e.g. a parameter some finished trial did not have
        lines.append(f"not ranked: {', '.join(unranked)} (not in every finished trial)")
    if caveat:
        lines.insert(0, caveat[0].upper() + caveat[1:])
    ax.set_title(wrap("\n".join(lines), 100), fontsize=10, color="darkred" if caveat else "black")
    ax.set_xlabel(f"share of the variance of {metric} explained ({evaluator_name}, Optuna; sums to 1)")
    ax.grid(axis="x", alpha=0.3)
    return fig
