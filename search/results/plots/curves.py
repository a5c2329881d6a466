"""``learning_curves.png``: the objective per epoch of every trial, from Tune's results.

Trials that race over folds are drawn by what ASHA compared them on, their estimate over the
folds trained so far (``<objective>_race``; ``scheduler_metric``): their objective waits for every fold.

Each curve ends where its trial ended: a cross where it was stopped early (ASHA, or the time
limit; ``medtune.trainables.budget.stopped_early`` decides), a dot where it ran the whole budget.
Trials are numbered as the Optuna study numbers them, so the legend matches the study's plots.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from medtune.search.results.plots._style import (
    FIGSIZE,
    architecture_colours,
    default_architecture,
    known_architectures,
    number_digits,
    pyplot,
    save,
    stopped_label,
    trial_label,
    wrap,
)
from medtune.search.spec.sweep_spec import SweepSpec, epoch_plan, scheduler_metric
from medtune.search.tracking.trial_runs import study_number
from medtune.trainables.budget import stopped_early
from medtune.trainables.objective import EPOCH, Objective, trial_summary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Up to this many trials the learning curves' legend names each trial; above it, each architecture
#: (a legend of 30 trials would cover the curves).
MAX_TRIALS_IN_LEGEND = 12
#: With more trials than MAX_TRIALS_IN_LEGEND the best few are still named, in the legend and at their curves.
TOP_TRIALS_NAMED = 3
#: The x axis has a tick per epoch up to this many epochs.
MAX_EPOCH_TICKS = 30


@dataclass(frozen=True)
class Curve:
    """One trial's objective per epoch, as the learning curves draw it."""

    number: int
    architecture: str
    epochs: list[float]
    values: list[float]
    stopped: bool
    best: float


def trial_number(result: Any, position: int) -> int:
    """The Optuna trial number of a Tune result (the history's x axis), else its position.

    Tune tags each trial ``<n>_<config>`` with a counter it advances once per suggested trial,
    and the searcher asks the study for one trial per suggestion, so ``n - 1`` is the trial's
    number in the study.
    """
    tag = (getattr(result, "metrics", None) or {}).get("experiment_tag")
    frame = getattr(result, "metrics_dataframe", None)
    if tag is None and frame is not None and "experiment_tag" in frame:
        tags = frame["experiment_tag"].dropna()
        tag = tags.iloc[-1] if not tags.empty else None
    return study_number(tag, position) if tag is not None else position


def curves(results: Any, spec: SweepSpec) -> list[Curve]:
    """The curves of every result that reported the objective per epoch, by trial number."""
    metric = scheduler_metric(spec)
    objective = Objective(metric, spec.metric.mode)
    plan = epoch_plan(spec)
    out = []
    for position, result in enumerate(results):
        frame = result.metrics_dataframe
        if frame is None or frame.empty or metric not in frame or EPOCH not in frame:
            continue
        frame = frame.dropna(subset=[metric]).sort_values(EPOCH)
        if frame.empty:
            continue
        values = [float(v) for v in frame[metric]]
        architecture = (getattr(result, "config", None) or {}).get("architecture") or default_architecture(spec)
        summary = trial_summary(frame.to_dict("records"), objective)
        out.append(Curve(trial_number(result, position), str(architecture), [float(e) for e in frame[EPOCH]],
                         values, stopped_early(frame.iloc[-1].to_dict(), plan),
                         summary.best_value if summary else math.nan))
    return sorted(out, key=lambda c: c.number)


def learning_curves_figure(results: Any, spec: SweepSpec) -> "Figure":
    """The objective per epoch of every trial, coloured by architecture.

    Up to ``MAX_TRIALS_IN_LEGEND`` trials each has a legend entry (trials of one architecture share
    its colour and differ in line style); above that the legend names the architectures and the
    ``TOP_TRIALS_NAMED`` best trials, which are drawn thicker and numbered at their last epoch.
    """
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    metric, scheduler = scheduler_metric(spec), spec.search.scheduler
    objective = Objective(metric, spec.metric.mode)
    drawn = curves(results, spec)
    colours = architecture_colours(known_architectures(spec, (c.architecture for c in drawn)))
    many = len(drawn) > MAX_TRIALS_IN_LEGEND
    top = [c.number for c in objective.sorted(drawn, key=lambda c: c.best)[:TOP_TRIALS_NAMED]] if many else []
    digits = number_digits(c.number for c in drawn)
    styles: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    trial_handles = []
    for curve in drawn:
        colour = colours[curve.architecture]
        style = "-" if many else next(styles.setdefault(curve.architecture, itertools.cycle(["-", "--", ":", "-."])))
        emphasised = curve.number in top
        line, = ax.plot(curve.epochs, curve.values, color=colour, linestyle=style,
                        linewidth=2.4 if emphasised else 1.3, alpha=0.45 if many and not emphasised else 0.9,
                        zorder=3 if emphasised else 2, label=trial_label(curve.number, curve.architecture, digits))
        line.set_gid(f"trial {curve.number}")
        ax.plot(curve.epochs[-1], curve.values[-1], "x" if curve.stopped else "o", color=colour, markersize=7,
                zorder=4)
        if not many:
            trial_handles.append(line)
    _number_at_ends(ax, [c for c in drawn if c.number in top], colours, digits)
    stopped = sum(c.stopped for c in drawn)
    completed = len(drawn) - stopped
    stop = stopped_label(spec)
    if many:
        trial_handles = _architecture_and_top_handles(drawn, top, colours, digits)
    fig.legend(handles=trial_handles + _end_marker_handles(stop, stopped, completed), loc="outside right upper",
               fontsize=8, title="trial architecture" if not many else "architecture", title_fontsize=8)
    budget = f"{scheduler.max_t} {scheduler.unit}"
    ax.set_title(wrap(f"{spec.name}: {metric} per epoch of {len(drawn)} trials\n"
                      f"x: {stop}, {stopped}; o: full budget ({budget}), {completed}"), fontsize=10)
    ax.set(xlabel="epoch", ylabel=metric)
    plan = epoch_plan(spec)
    if plan is not None and plan <= MAX_EPOCH_TICKS:
        ax.set_xticks(range(1, plan + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return fig


def _architecture_and_top_handles(drawn: Sequence[Curve], top: Sequence[int], colours: dict[str, str],
                                  digits: int) -> list[Any]:
    """The legend of many trials: each architecture drawn, then the best few trials with their values."""
    from matplotlib.lines import Line2D

    by_number = {c.number: c for c in drawn}
    handles = [Line2D([], [], color=colour, linewidth=1.3, label=name) for name, colour in colours.items()
               if any(c.architecture == name for c in drawn)]
    handles += [Line2D([], [], color=colours[by_number[n].architecture], linewidth=2.4,
                       label=f"best {rank}: {trial_label(n, by_number[n].architecture, digits)} "
                             f"({by_number[n].best:.3f})")
                for rank, n in enumerate(top, start=1)]
    return handles


def _end_marker_handles(stop: str, stopped: int, completed: int) -> list[Any]:
    """The legend entries of the two end markers, with how many trials ended each way."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], color="0.25", marker="x", linestyle="none", markersize=7, label=f"{stop} ({stopped})"),
            Line2D([], [], color="0.25", marker="o", linestyle="none", markersize=7,
                   label=f"ran the full budget ({completed})")]


def _number_at_ends(ax: Any, named: Sequence[Curve], colours: dict[str, str], digits: int) -> None:
    """Each named trial's number just right of its last point, pushed apart where two would overlap."""
    if not named:
        return
    ax.autoscale_view()
    low, high = ax.get_ylim()
    gap = (high - low) * 0.045
    placed: list[float] = []
    for curve in sorted(named, key=lambda c: -c.values[-1]):  # top down on the axes, whatever the mode
        y = curve.values[-1] if not placed else min(curve.values[-1], placed[-1] - gap)
        placed.append(y)
        ax.annotate(f"{curve.number:0{digits}d}", (curve.epochs[-1], curve.values[-1]), xytext=(7, y),
                    textcoords=("offset points", "data"), va="center", fontsize=8, fontweight="bold",
                    color=colours[curve.architecture], annotation_clip=False)


def learning_curves(results: Any, spec: SweepSpec, path: Path) -> Path:
    """Write ``learning_curves_figure`` to ``path``."""
    return save(learning_curves_figure(results, spec), Path(path))
