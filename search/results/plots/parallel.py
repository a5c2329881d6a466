"""``parallel_coordinates.png``: one vertical axis per searched parameter plus the objective, a
line per trial of the Optuna study (the axes themselves: ``_axes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medtune.search.results.plots._axes import draw_axes, objective_axis, param_axis
from medtune.search.results.plots._study import architecture_of, study_colours, trials
from medtune.search.results.plots._style import (
    FIGSIZE,
    STOPPED_GREY,
    number_digits,
    pyplot,
    stopped_label,
    trial_label,
    wrap,
)
from medtune.search.spec.sweep_spec import SweepSpec
from medtune.trainables.objective import Objective

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _param_order(spec: SweepSpec) -> list[str]:
    """The architecture first (every other choice depends on it), then the space's order."""
    return sorted(spec.space, key=lambda k: k != "architecture")


def parallel_coordinates_figure(study: Any, spec: SweepSpec) -> "Figure":
    """One vertical axis per searched parameter plus the objective; a line per trial.

    Finished (COMPLETE) trials are coloured by architecture and reach the objective axis; the
    best one is drawn thicker. ASHA-stopped (PRUNED) trials are faint grey lines over the
    parameters only: where the search went but ASHA cut, without a value comparable to a full run.
    """
    from matplotlib.lines import Line2D

    plt = pyplot()
    metric = spec.metric.name
    complete, pruned = trials(study, "COMPLETE"), trials(study, "PRUNED")
    colours = study_colours(study, spec)
    names = _param_order(spec)
    axes = [param_axis(name, spec.space[name]) for name in names]
    value_axis = objective_axis(metric, [t.value for t in complete])
    # About 1.1 inches between axes, for the tick labels left of each one.
    width = max(FIGSIZE[0], 1.1 * (len(axes) + 1) + 2.4)
    fig, ax = plt.subplots(figsize=(width, FIGSIZE[1]), layout="constrained")
    xs = list(range(len(axes) + 1))
    for trial in pruned:
        ys = [axis.scale(trial.params.get(name)) for name, axis in zip(names, axes)]
        ax.plot(xs[:-1], ys, color=STOPPED_GREY, alpha=0.35, linewidth=0.9, zorder=2)
    best = Objective(metric, spec.metric.mode).best(complete, key=lambda t: t.value)  # the first of ties
    for trial in complete:
        ys = [axis.scale(trial.params.get(name)) for name, axis in zip(names, axes)] + [value_axis.scale(trial.value)]
        line, = ax.plot(xs, ys, color=colours[architecture_of(trial, spec)], alpha=0.85,
                        linewidth=2.8 if trial is best else 1.4, zorder=4 if trial is best else 3)
        line.set_gid(f"trial {trial.number}")
    draw_axes(ax, axes + [value_axis])
    seen = {architecture_of(t, spec) for t in complete}
    handles = [Line2D([], [], color=c, linewidth=1.4, label=name) for name, c in colours.items() if name in seen]
    if best is not None:
        digits = number_digits(t.number for t in study.trials)
        handles.append(Line2D([], [], color=colours[architecture_of(best, spec)], linewidth=2.8,
                              label=f"best: {trial_label(best.number, architecture_of(best, spec), digits)} "
                                    f"({best.value:.3f})"))
    handles.append(Line2D([], [], color=STOPPED_GREY, alpha=0.6, linewidth=0.9,
                          label=f"{stopped_label(spec)} ({len(pruned)}):\nparameters only"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="architecture", title_fontsize=8)
    ax.set_title(wrap(f"{spec.name}: parallel coordinates of {metric}\n{len(complete)} finished trials "
                      f"coloured by architecture; {len(pruned)} {stopped_label(spec)} in grey"), fontsize=10)
    return fig
