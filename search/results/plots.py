"""Plots of a finished sweep, logged as images on its MLflow parent run.

- ``learning_curves.png``: the objective per epoch for every trial, with where each one ended:
  a cross where the trial was stopped early (ASHA, or the time limit), a dot where it ran the
  whole budget;
- ``optimization_history.png``, ``parallel_coordinates.png`` and ``param_importances.png``: views
  of the study the searcher told its trials to (``search/run/study.py``): finished trials COMPLETE
  with their best value, ASHA-stopped ones PRUNED, exactly what TPE modelled.

The three views of the study are drawn here with matplotlib rather than taken from
``optuna.visualization.matplotlib``: Optuna's parallel coordinates overlap their labels, its
history puts ticks at half trials, and its importances carry no warning when they come from a
handful of trials. Every plot gives an architecture the same colour (``architecture_colours``),
so a reader can follow one architecture from plot to plot. The ``*_figure`` functions return the
matplotlib figure (tests read it); ``learning_curves``, ``optuna_plots`` and ``sweep_plots`` write
the PNGs.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from medtune.search.spec.space import Distribution
from medtune.search.spec.sweep_spec import SweepSpec
from medtune.search.tracking.trial_runs import study_number
from medtune.trainables.budget import stopped_early

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

#: A qualitative palette: architectures are categories, not a scale.
PALETTE = "tab10"
#: Up to this many trials the learning curves' legend names each trial; above it, each architecture
#: (a legend of 30 trials would cover the curves).
MAX_TRIALS_IN_LEGEND = 12
#: With more trials than MAX_TRIALS_IN_LEGEND the best few are still named, in the legend and at their curves.
TOP_TRIALS_NAMED = 3
#: Parameter importances below these counts carry a "not reliable" caveat (``importance_caveat``).
MIN_FINISHED_FOR_IMPORTANCES = 10
MIN_FINISHED_PER_PARAM = 2
#: Characters per title line: the titles are wrapped to fit the axes next to the legend.
TITLE_WIDTH = 78
DPI = 100
FIGSIZE = (10, 5.2)
#: What the study's ASHA-stopped trials look like in every plot.
STOPPED_GREY = "0.55"


# --------------------------------------------------------------------------------------------
# Shared pieces


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def architecture_colours(architectures: Iterable[str]) -> dict[str, str]:
    """A colour (hex) per architecture, from a fixed qualitative palette, in first-seen order.

    The same list gives the same colours, so every plot of a sweep builds it from ``known_architectures``
    and an architecture keeps its colour from the learning curves to the parallel coordinates.
    Past ten architectures the palette repeats (tab20 would pair near-identical shades instead).
    """
    import matplotlib
    from matplotlib.colors import to_hex

    palette = [to_hex(c) for c in matplotlib.colormaps[PALETTE].colors]
    names = list(dict.fromkeys(architectures))
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def known_architectures(spec: SweepSpec, seen: Iterable[str] = ()) -> list[str]:
    """The spec's architectures sorted, then any a trial had that the spec does not name (sorted).

    The spec's list comes first so that what one plot happens to see never shifts another plot's
    colours: every plot of one sweep gets the same mapping.
    """
    listed = sorted(spec.architectures)
    return listed + sorted(set(seen) - set(listed))


def _default_architecture(spec: SweepSpec) -> str:
    """The architecture of a trial that does not say (the spec's only one, when it has one)."""
    architectures = spec.architectures
    return architectures[0] if len(architectures) == 1 else "unknown"


def _wrap(text: str, width: int = TITLE_WIDTH) -> str:
    """Wrap each line of a title: matplotlib clips a long title rather than wrapping it."""
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def _stopped_label(spec: SweepSpec) -> str:
    """What stopped a trial early in this sweep (``stopped_early`` cannot tell ASHA from the time limit)."""
    causes = (["ASHA"] if spec.search.scheduler.name == "asha" else []) + \
             (["the time limit"] if spec.search.time_budget_s else [])
    return f"stopped by {' or '.join(causes)}" if causes else "stopped early"


def _better(mode: str) -> Callable[[float, float], bool]:
    return (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)


def _label(number: int, architecture: str, digits: int = 2) -> str:
    """A trial as the legends name it: ``07 mobilenetv2_100`` (its Optuna trial number)."""
    return f"{number:0{digits}d} {architecture}"


def _digits(numbers: Iterable[int]) -> int:
    return max([2, *(len(str(n)) for n in numbers)])


def _save(fig: "Figure", path: Path) -> Path:
    plt = _pyplot()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Learning curves (from Tune's results)


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
    metric, mode = spec.metric.name, spec.metric.mode
    plan = spec.search.scheduler.max_t if spec.search.scheduler.unit == "epochs" else None
    out = []
    for position, result in enumerate(results):
        frame = result.metrics_dataframe
        if frame is None or frame.empty or metric not in frame or "epoch" not in frame:
            continue
        frame = frame.dropna(subset=[metric]).sort_values("epoch")
        if frame.empty:
            continue
        values = [float(v) for v in frame[metric]]
        architecture = (getattr(result, "config", None) or {}).get("architecture") or _default_architecture(spec)
        out.append(Curve(trial_number(result, position), str(architecture), [float(e) for e in frame["epoch"]],
                         values, stopped_early(frame.iloc[-1].to_dict(), plan),
                         min(values) if mode == "min" else max(values)))
    return sorted(out, key=lambda c: c.number)


def _top_numbers(drawn: Sequence[Curve], mode: str, k: int) -> list[int]:
    ranked = sorted(drawn, key=lambda c: c.best if mode == "min" else -c.best)
    return [c.number for c in ranked[:k]]


def learning_curves_figure(results: Any, spec: SweepSpec) -> "Figure":
    """The objective per epoch of every trial, coloured by architecture.

    Up to ``MAX_TRIALS_IN_LEGEND`` trials each has a legend entry (trials of one architecture share
    its colour and differ in line style); above that the legend names the architectures and the
    ``TOP_TRIALS_NAMED`` best trials, which are drawn thicker and numbered at their last epoch.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    metric, scheduler = spec.metric.name, spec.search.scheduler
    drawn = curves(results, spec)
    colours = architecture_colours(known_architectures(spec, (c.architecture for c in drawn)))
    many = len(drawn) > MAX_TRIALS_IN_LEGEND
    top = _top_numbers(drawn, spec.metric.mode, TOP_TRIALS_NAMED) if many else []
    digits = _digits(c.number for c in drawn)
    styles: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    trial_handles = []
    for curve in drawn:
        colour = colours[curve.architecture]
        style = "-" if many else next(styles.setdefault(curve.architecture, itertools.cycle(["-", "--", ":", "-."])))
        emphasised = curve.number in top
        line, = ax.plot(curve.epochs, curve.values, color=colour, linestyle=style,
                        linewidth=2.4 if emphasised else 1.3, alpha=0.45 if many and not emphasised else 0.9,
                        zorder=3 if emphasised else 2, label=_label(curve.number, curve.architecture, digits))
        line.set_gid(f"trial {curve.number}")
        ax.plot(curve.epochs[-1], curve.values[-1], "x" if curve.stopped else "o", color=colour, markersize=7,
                zorder=4)
        if not many:
            trial_handles.append(line)
    _number_at_ends(ax, [c for c in drawn if c.number in top], colours, digits)
    stopped = sum(c.stopped for c in drawn)
    completed = len(drawn) - stopped
    stop = _stopped_label(spec)
    if many:
        by_number = {c.number: c for c in drawn}
        trial_handles = [Line2D([], [], color=colour, linewidth=1.3, label=name) for name, colour in colours.items()
                         if any(c.architecture == name for c in drawn)]
        trial_handles += [Line2D([], [], color=colours[by_number[n].architecture], linewidth=2.4,
                                 label=f"best {rank}: {_label(n, by_number[n].architecture, digits)} "
                                       f"({by_number[n].best:.3f})")
                          for rank, n in enumerate(top, start=1)]
    marker_handles = [Line2D([], [], color="0.25", marker="x", linestyle="none", markersize=7,
                             label=f"{stop} ({stopped})"),
                      Line2D([], [], color="0.25", marker="o", linestyle="none", markersize=7,
                             label=f"ran the full budget ({completed})")]
    fig.legend(handles=trial_handles + marker_handles, loc="outside right upper", fontsize=8,
               title="trial architecture" if not many else "architecture", title_fontsize=8)
    budget = f"{scheduler.max_t} {scheduler.unit}"
    ax.set_title(_wrap(f"{spec.name}: {metric} per epoch of {len(drawn)} trials\n"
                       f"x: {stop}, {stopped}; o: full budget ({budget}), {completed}"), fontsize=10)
    ax.set(xlabel="epoch", ylabel=metric)
    plan = scheduler.max_t if scheduler.unit == "epochs" else None
    if plan is not None and plan <= 30:
        ax.set_xticks(range(1, plan + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return fig


def _number_at_ends(ax: Any, named: Sequence[Curve], colours: dict[str, str], digits: int) -> None:
    """Each named trial's number just right of its last point, pushed apart where two would overlap."""
    if not named:
        return
    ax.autoscale_view()
    low, high = ax.get_ylim()
    gap = (high - low) * 0.045
    placed: list[float] = []
    for curve in sorted(named, key=lambda c: -c.values[-1]):
        y = curve.values[-1] if not placed else min(curve.values[-1], placed[-1] - gap)
        placed.append(y)
        ax.annotate(f"{curve.number:0{digits}d}", (curve.epochs[-1], curve.values[-1]), xytext=(7, y),
                    textcoords=("offset points", "data"), va="center", fontsize=8, fontweight="bold",
                    color=colours[curve.architecture], annotation_clip=False)


def learning_curves(results: Any, spec: SweepSpec, path: Path) -> Path:
    """Write ``learning_curves_figure`` to ``path``."""
    return _save(learning_curves_figure(results, spec), Path(path))


# --------------------------------------------------------------------------------------------
# The study: trials as TPE saw them


def _trials(study: Any, state_name: str) -> list["FrozenTrial"]:
    from optuna.trial import TrialState

    return list(study.get_trials(deepcopy=False, states=(TrialState[state_name],)))


def _architecture_of(trial: "FrozenTrial", spec: SweepSpec) -> str:
    value = trial.params.get("architecture", trial.user_attrs.get("architecture"))
    return str(value) if value is not None else _default_architecture(spec)


def _last_intermediate(trial: "FrozenTrial") -> float | None:
    """The last value a pruned trial reported (where ASHA stopped it), if it reported one."""
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else None


def _study_colours(study: Any, spec: SweepSpec) -> dict[str, str]:
    return architecture_colours(known_architectures(spec, (_architecture_of(t, spec) for t in study.trials)))


def optimization_history_figure(study: Any, spec: SweepSpec) -> "Figure":
    """Each trial's objective by trial number, and the best finished value so far.

    Finished (COMPLETE) trials are dots at their best epoch's value; ASHA-stopped (PRUNED) ones
    are faint crosses at their last reported value, which came from fewer epochs and so does not
    enter the best-so-far line.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    metric, mode = spec.metric.name, spec.metric.mode
    complete, pruned = _trials(study, "COMPLETE"), _trials(study, "PRUNED")
    colours = _study_colours(study, spec)
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    for trial in pruned:
        value = _last_intermediate(trial)
        if value is not None:
            dots = ax.scatter([trial.number], [value], marker="x", s=36, alpha=0.5,
                              color=colours[_architecture_of(trial, spec)], zorder=2)
            dots.set_gid(f"trial {trial.number}")
    for trial in complete:
        dots = ax.scatter([trial.number], [trial.value], marker="o", s=46, edgecolors="0.15", linewidths=0.6,
                          color=colours[_architecture_of(trial, spec)], zorder=3)
        dots.set_gid(f"trial {trial.number}")
    better = _better(mode)
    xs, best = [], []
    for trial in sorted(complete, key=lambda t: t.number):
        xs.append(trial.number)
        best.append(trial.value if not best or better(trial.value, best[-1]) else best[-1])
    last = max((t.number for t in study.trials), default=0)
    if xs:
        ax.step(xs + [last], best + [best[-1]], where="post", color="0.1", linewidth=1.4, zorder=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.5, last + 0.5)
    seen = {_architecture_of(t, spec) for t in complete + pruned}
    handles = [Line2D([], [], marker="o", linestyle="none", color=c, markeredgecolor="0.15", label=name)
               for name, c in colours.items() if name in seen]
    handles += [Line2D([], [], marker="o", linestyle="none", color="0.6", markeredgecolor="0.15",
                       label=f"finished: best epoch ({len(complete)})"),
                Line2D([], [], marker="x", linestyle="none", color="0.6",
                       label=f"{_stopped_label(spec)}: last epoch ({len(pruned)})"),
                Line2D([], [], color="0.1", linewidth=1.4, label=f"best finished so far ({mode})")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="architecture", title_fontsize=8)
    failed = len(_trials(study, "FAIL"))
    ax.set_title(_wrap(f"{spec.name}: optimisation history of {metric}\n{len(complete)} finished trials, "
                       f"{len(pruned)} {_stopped_label(spec)}" + (f", {failed} failed" if failed else "")),
                 fontsize=10)
    ax.set(xlabel="trial number", ylabel=metric)
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------
# Parallel coordinates


@dataclass(frozen=True)
class Axis:
    """One vertical axis of the parallel coordinates: where a value goes (0..1) and its ticks."""

    name: str
    scale: Callable[[Any], float]
    ticks: list[tuple[float, str]]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[tuple[float, str]]:
    """Round values inside [low, high] (as positions 0..1), with as many decimals as their step needs."""
    from matplotlib.ticker import MaxNLocator

    if high <= low:
        return [(0.5, f"{low:.4g}")]
    candidates = MaxNLocator(count, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    values = [float(v) for v in candidates if low - 1e-12 <= v <= high + 1e-12]
    step = values[1] - values[0] if len(values) > 1 else high - low
    decimals = next((d for d in range(8) if all(abs(round(v, d) - v) < step * 1e-3 for v in values)), 8)
    return [((v - low) / (high - low), f"{v:.{decimals}f}") for v in values]


def _linear(low: float, high: float) -> Callable[[Any], float]:
    def scale(value: Any) -> float:
        if value is None:
            return math.nan
        return 0.5 if high <= low else (float(value) - low) / (high - low)

    return scale


def _fold(text: str, width: int = 16) -> str:
    """Long names on two or more lines, broken at underscores (``tf_efficientnet_`` / ``lite0``), so a
    tick label or axis name stays within the gap between two axes."""
    if len(text) <= width:
        return text
    lines, line = [], ""
    for part in re.split(r"(?<=_)", text):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join(lines + [line])


def _choice_axis(name: str, dist: Distribution) -> Axis:
    values = list(dist.values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        values.sort()
    positions = {str(v): (i / (len(values) - 1) if len(values) > 1 else 0.5) for i, v in enumerate(values)}
    return Axis(name, lambda v: positions.get(str(v), math.nan) if v is not None else math.nan,
                [(p, _fold(label)) for label, p in positions.items()])


def _log_axis(name: str, low: float, high: float) -> Axis:
    lo, hi = math.log10(low), math.log10(high)
    log_scale = _linear(lo, hi)
    decades = range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)
    ticks = [((d - lo) / (hi - lo), f"1e{d}") for d in decades] if hi > lo else []
    if len(ticks) < 2:
        ticks = [(0.0, f"{low:.2g}"), (1.0, f"{high:.2g}")]
    return Axis(f"{name}\n(log)", lambda v: log_scale(math.log10(v)) if v is not None and v > 0 else math.nan,
                ticks)


def _int_axis(name: str, low: int, high: int) -> Axis:
    from matplotlib.ticker import MaxNLocator

    scale = _linear(low, high)
    values = range(low, high + 1) if high - low <= 8 else \
        [int(v) for v in MaxNLocator(6, integer=True).tick_values(low, high) if low <= v <= high]
    return Axis(name, scale, [(scale(v), str(v)) for v in values])


def param_axis(name: str, dist: Distribution) -> Axis:
    """The axis of one searched parameter: categories evenly spaced by name, log-uniform values
    on a log scale, integers as integers, the rest linear over the searched range."""
    if dist.kind == "choice":
        return _choice_axis(name, dist)
    low, high = dist.values[0], dist.values[1]
    if dist.kind == "loguniform" or (dist.kind == "int" and dist.log):
        return _log_axis(name, float(low), float(high))
    if dist.kind == "int":
        return _int_axis(name, int(low), int(high))
    return Axis(name, _linear(float(low), float(high)), _nice_ticks(float(low), float(high)))


def _objective_axis(metric: str, values: Sequence[float]) -> Axis:
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.04 or abs(low) * 0.01 or 0.01
    low, high = low - pad, high + pad
    return Axis(f"{metric}\n(objective)", _linear(low, high), _nice_ticks(low, high, count=6))


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

    plt = _pyplot()
    metric, mode = spec.metric.name, spec.metric.mode
    complete, pruned = _trials(study, "COMPLETE"), _trials(study, "PRUNED")
    colours = _study_colours(study, spec)
    names = _param_order(spec)
    axes = [param_axis(name, spec.space[name]) for name in names]
    objective = _objective_axis(metric, [t.value for t in complete])
    # About 1.1 inches between axes, for the tick labels left of each one.
    width = max(FIGSIZE[0], 1.1 * (len(axes) + 1) + 2.4)
    fig, ax = plt.subplots(figsize=(width, FIGSIZE[1]), layout="constrained")
    xs = list(range(len(axes) + 1))
    for trial in pruned:
        ys = [axis.scale(trial.params.get(name)) for name, axis in zip(names, axes)]
        ax.plot(xs[:-1], ys, color=STOPPED_GREY, alpha=0.35, linewidth=0.9, zorder=2)
    best = min(complete, key=lambda t: t.value if mode == "min" else -t.value) if complete else None
    for trial in complete:
        ys = [axis.scale(trial.params.get(name)) for name, axis in zip(names, axes)] + [objective.scale(trial.value)]
        line, = ax.plot(xs, ys, color=colours[_architecture_of(trial, spec)], alpha=0.85,
                        linewidth=2.8 if trial is best else 1.4, zorder=4 if trial is best else 3)
        line.set_gid(f"trial {trial.number}")
    _draw_axes(ax, axes + [objective])
    seen = {_architecture_of(t, spec) for t in complete}
    handles = [Line2D([], [], color=c, linewidth=1.4, label=name) for name, c in colours.items() if name in seen]
    if best is not None:
        digits = _digits(t.number for t in study.trials)
        handles.append(Line2D([], [], color=colours[_architecture_of(best, spec)], linewidth=2.8,
                              label=f"best: {_label(best.number, _architecture_of(best, spec), digits)} "
                                    f"({best.value:.3f})"))
    handles.append(Line2D([], [], color=STOPPED_GREY, alpha=0.6, linewidth=0.9,
                          label=f"{_stopped_label(spec)} ({len(pruned)}):\nparameters only"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="architecture", title_fontsize=8)
    ax.set_title(_wrap(f"{spec.name}: parallel coordinates of {metric}\n{len(complete)} finished trials "
                       f"coloured by architecture; {len(pruned)} {_stopped_label(spec)} in grey"), fontsize=10)
    return fig


def _draw_axes(ax: Any, axes: Sequence[Axis]) -> None:
    """Vertical axes with their tick labels on the left, on a white ground so lines never hide them."""
    for x, axis in enumerate(axes):
        ax.axvline(x, color="0.25", linewidth=1, zorder=1)
        for position, label in axis.ticks:
            ax.plot([x - 0.025, x], [position, position], color="0.25", linewidth=1, zorder=5)
            ax.text(x - 0.04, position, label, ha="right", va="center", fontsize=7.5, zorder=6,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.6})
    ax.set_xticks(range(len(axes)), ["\n".join(_fold(line) for line in axis.name.splitlines()) for axis in axes],
                  fontsize=9)
    ax.set_xlim(-0.55, len(axes) - 1 + 0.1)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    ax.tick_params(axis="x", length=0)
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)


# --------------------------------------------------------------------------------------------
# Parameter importances


def importance_caveat(finished: int, params: int) -> str | None:
    """Why importances from ``finished`` COMPLETE trials over ``params`` searched values are not to be trusted.

    The importances are fitted to finished trials only (ASHA-stopped ones stopped at different
    epochs and are not comparable), and a handful of points lets an irrelevant parameter explain
    the objective as well as the one that matters. In synthetic studies where only the
    architecture moved val AUC (3 parameters), fANOVA on 4-6 finished trials gave an irrelevant
    parameter up to 42% of the importance and once ranked lr above the architecture; from 10
    finished trials on the architecture came first with 79% or more. Hence at least ``MIN_FINISHED_FOR_IMPORTANCES`` (also Optuna's default number of
    random trials before TPE trusts its own model) and ``MIN_FINISHED_PER_PARAM`` per searched
    parameter, since each parameter needs points that differ in it alone.
    """
    needed = max(MIN_FINISHED_FOR_IMPORTANCES, MIN_FINISHED_PER_PARAM * params)
    if finished >= needed:
        return None
    return f"from only {finished} finished trials (fewer than {needed}): not reliable"


def importance_evaluator() -> tuple[Any, str]:
    """fANOVA (seeded) and its name for the caption.

    Named explicitly rather than left to Optuna: Optuna 5's default, PED-ANOVA, ranks parameters by
    how they reach the top 10% of trials and wants at least 5 trials there, about 50 finished
    trials, more than most sweeps here finish; on 12 synthetic trials where only the architecture
    mattered it ranked the architecture last, where fANOVA gave it 98%. The seed keeps the figure
    the same when it is drawn again.
    """
    import importlib.util

    import optuna

    if importlib.util.find_spec("sklearn") is None:  # fANOVA's random forest
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA (scikit-learn is missing for fANOVA)"
    return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"


def _optuna_distribution(dist: Distribution) -> Any:
    """The spec's whole range of a parameter, as the Optuna distribution ``Distribution.suggest`` asks for."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dist.kind == "choice":
        return CategoricalDistribution(list(dist.values))
    if dist.kind == "int":
        return IntDistribution(int(dist.values[0]), int(dist.values[1]), log=dist.log)
    return FloatDistribution(float(dist.values[0]), float(dist.values[1]), log=dist.kind == "loguniform")


def importance_study(study: Any, spec: SweepSpec) -> Any:
    """The study's finished trials with one range per parameter: the spec's.

    ``frozen_depth`` is asked for in a range that depends on the architecture (``search/spec/space.py``),
    and Optuna's importances leave out any parameter whose range differs between trials, so in a
    sweep over simple_cnn and a ResNet the frozen depth would silently drop out of the ranking.
    Every value lies inside the spec's range, so the trials are copied into a study that gives
    each parameter that range. A study that does not fit the spec (it changed on resume) is used as it is.
    """
    import optuna

    ranges = {name: _optuna_distribution(dist) for name, dist in spec.space.items()}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created" line in the sweep's log
    try:
        copy = optuna.create_study(direction=study.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    try:
        for trial in _trials(study, "COMPLETE"):
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

    plt = _pyplot()
    metric = spec.metric.name
    complete, pruned = _trials(study, "COMPLETE"), _trials(study, "PRUNED")
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
             f"{evaluator_name} over {len(complete)} finished trials ({len(pruned)} {_stopped_label(spec)} left out)"]
    unranked = [name for name in spec.space if name not in importances]
    if unranked:  # e.g. a parameter some finished trial did not have
        lines.append(f"not ranked: {', '.join(unranked)} (not in every finished trial)")
    if caveat:
        lines.insert(0, caveat[0].upper() + caveat[1:])
    ax.set_title(_wrap("\n".join(lines), 100), fontsize=10, color="darkred" if caveat else "black")
    ax.set_xlabel(f"share of the variance of {metric} explained ({evaluator_name}, Optuna; sums to 1)")
    ax.grid(axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------
# Writing the plots


def optuna_plots(study: Any, spec: SweepSpec, folder: Path) -> list[Path]:
    """The views of the study TPE was told: its history, parallel coordinates and parameter importances.

    They need two finished (COMPLETE) trials; importances also need two searched parameters to rank.
    A view that cannot be drawn is a warning, never a failed sweep.
    """
    complete = _trials(study, "COMPLETE")
    if len(complete) < 2 or not spec.space:
        log.info("the study's plots need two trials that ran their full budget; the study has %d (of %d, the "
                 "others stopped early or failed)", len(complete), len(study.trials))
        return []
    views: list[tuple[str, Callable[[Any, SweepSpec], "Figure"]]] = [
        ("optimization_history.png", optimization_history_figure),
        ("parallel_coordinates.png", parallel_coordinates_figure)]
    if len(spec.space) > 1:
        views.append(("param_importances.png", param_importances_figure))
    out = []
    for name, draw in views:
        try:
            out.append(_save(draw(study, spec), Path(folder) / name))
        except Exception as exc:  # e.g. importances need variation in the values
            log.warning("could not draw %s: %s", name, exc)
    return out


def sweep_plots(results: Any, study: Any, spec: SweepSpec, folder: Path) -> list[Path]:
    """Every plot that could be drawn (a plot that fails is a warning, never a failed sweep)."""
    out = []
    try:
        out.append(learning_curves(results, spec, Path(folder) / "learning_curves.png"))
    except Exception as exc:
        log.warning("could not draw the learning curves: %s", exc)
    if study is not None:
        try:
            out += optuna_plots(study, spec, folder)
        except Exception as exc:
            log.warning("could not draw the study's plots: %s", exc)
    return out
