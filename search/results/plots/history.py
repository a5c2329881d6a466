"""``optimization_history.png``: each trial's objective by its number in the Optuna study, and the
best finished value so far (the line TPE is trying to push)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medtune.search.results.plots._study import architecture_of, last_intermediate, study_colours, trials
from medtune.search.results.plots._style import FIGSIZE, pyplot, stopped_label, wrap
from medtune.search.spec.sweep_spec import SweepSpec
from medtune.trainables.objective import Objective

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def optimization_history_figure(study: Any, spec: SweepSpec) -> "Figure":
    """Each trial's objective by trial number, and the best finished value so far.

    Finished (COMPLETE) trials are dots at their best epoch's value; ASHA-stopped (PRUNED) ones
    are faint crosses at their last reported value, which came from fewer epochs and so does not
    enter the best-so-far line.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    metric, mode = spec.metric.name, spec.metric.mode
    objective = Objective(metric, mode)
    complete, pruned = trials(study, "COMPLETE"), trials(study, "PRUNED")
    colours = study_colours(study, spec)
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    for trial in pruned:
        value = last_intermediate(trial)
        if value is not None:
            dots = ax.scatter([trial.number], [value], marker="x", s=36, alpha=0.5,
                              color=colours[architecture_of(trial, spec)], zorder=2)
            dots.set_gid(f"trial {trial.number}")
    for trial in complete:
        dots = ax.scatter([trial.number], [trial.value], marker="o", s=46, edgecolors="0.15", linewidths=0.6,
                          color=colours[architecture_of(trial, spec)], zorder=3)
        dots.set_gid(f"trial {trial.number}")
    xs, best = _best_so_far(complete, objective)
    last = max((t.number for t in study.trials), default=0)
    if xs:
        ax.step(xs + [last], best + [best[-1]], where="post", color="0.1", linewidth=1.4, zorder=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.5, last + 0.5)
    seen = {architecture_of(t, spec) for t in complete + pruned}
    handles = [Line2D([], [], marker="o", linestyle="none", color=c, markeredgecolor="0.15", label=name)
               for name, c in colours.items() if name in seen]
    handles += [Line2D([], [], marker="o", linestyle="none", color="0.6", markeredgecolor="0.15",
                       label=f"finished: best epoch ({len(complete)})"),
                Line2D([], [], marker="x", linestyle="none", color="0.6",
                       label=f"{stopped_label(spec)}: last epoch ({len(pruned)})"),
                Line2D([], [], color="0.1", linewidth=1.4, label=f"best finished so far ({mode})")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="architecture", title_fontsize=8)
    failed = len(trials(study, "FAIL"))
    ax.set_title(wrap(f"{spec.name}: optimisation history of {metric}\n{len(complete)} finished trials, "
                      f"{len(pruned)} {stopped_label(spec)}" + (f", {failed} failed" if failed else "")),
                 fontsize=10)
    ax.set(xlabel="trial number", ylabel=metric)
    ax.grid(alpha=0.3)
    return fig


def _best_so_far(complete: list[Any], objective: Objective) -> tuple[list[int], list[float]]:
    """Trial numbers in order and the best finished value up to each (a tie keeps the earlier)."""
    xs: list[int] = []
    best: list[float] = []
    for trial in sorted(complete, key=lambda t: t.number):
        xs.append(trial.number)
        best.append(trial.value if not best or objective.better(trial.value, best[-1]) else best[-1])
    return xs, best
