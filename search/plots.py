"""Plots of a finished sweep, logged as images on its MLflow parent run.

- ``learning_curves.png``: the objective per epoch for every trial, with where each one ended:
  a cross where ASHA stopped it, a dot where it ran the whole budget;
- Optuna's own views of the search (``optuna.visualization.matplotlib``): parameter importances,
  parallel coordinates and optimisation history. They are drawn from a study rebuilt from the
  leaderboard (each trial's searched values and best objective value, with the space's
  distributions), so they work the same after ``medtune resume`` and from any driver.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

from search.results import LeaderboardEntry
from search.spec import SweepSpec
from trainables.budget import stopped_early

log = logging.getLogger(__name__)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(results: Any, spec: SweepSpec, path: Path) -> Path:
    plt = _pyplot()
    metric, max_t = spec.metric.name, spec.search.scheduler.max_t
    plan = max_t if spec.search.scheduler.unit == "epochs" else None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    stopped = completed = 0
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or frame.empty or metric not in frame or "epoch" not in frame:
            continue
        frame = frame.sort_values("epoch")
        line, = ax.plot(frame["epoch"], frame[metric], alpha=0.7, linewidth=1)
        last_epoch, last_value = frame["epoch"].iloc[-1], frame[metric].iloc[-1]
        early = stopped_early(frame.iloc[-1].to_dict(), plan)
        stopped += int(early)
        completed += int(not early)
        ax.plot(last_epoch, last_value, "x" if early else "o", color=line.get_color(), markersize=7)
    ax.set(xlabel="epoch", ylabel=metric, title=f"{spec.name}: {metric} per epoch "
           f"(x: stopped by ASHA, {stopped}; o: full budget, {completed})")
    if plan is not None and plan <= 30:
        ax.set_xticks(range(1, plan + 1))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def rebuilt_study(entries: list[LeaderboardEntry], spec: SweepSpec) -> Any:
    """An Optuna study with one COMPLETE trial per ranked trial (searched values, best objective)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    distributions = {}
    for name, d in spec.space.items():
        if d.kind == "choice":
            distributions[name] = CategoricalDistribution(list(d.values))
        elif d.kind == "int":
            distributions[name] = IntDistribution(int(d.values[0]), int(d.values[1]), log=d.log)
        else:
            distributions[name] = FloatDistribution(float(d.values[0]), float(d.values[1]), log=d.kind == "loguniform")
    study = optuna.create_study(direction="minimize" if spec.metric.mode == "min" else "maximize")
    for entry in entries:
        if math.isnan(entry.best_value):
            continue
        params = {k: entry.config[k] for k in distributions if k in entry.config}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: distributions[k] for k in params},
                                                  value=entry.best_value))
    return study


def optuna_plots(entries: list[LeaderboardEntry], spec: SweepSpec, folder: Path) -> list[Path]:
    plt = _pyplot()
    import optuna.visualization.matplotlib as ovm

    study = rebuilt_study(entries, spec)
    if len(study.trials) < 2 or not spec.space:
        return []
    out = []
    views = [("optimization_history.png", ovm.plot_optimization_history),
             ("parallel_coordinates.png", ovm.plot_parallel_coordinate)]
    if len(spec.space) > 1:
        views.append(("param_importances.png", ovm.plot_param_importances))
    for name, plot in views:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
                ax = plot(study)
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(folder / name, dpi=110)
            plt.close(figure)
            out.append(folder / name)
        except Exception as exc:  # e.g. importances need variation in the values
            log.warning("could not draw %s: %s", name, exc)
    return out


def sweep_plots(results: Any, entries: list[LeaderboardEntry], spec: SweepSpec, folder: Path) -> list[Path]:
    """Every plot that could be drawn (a plot that fails is a warning, never a failed sweep)."""
    out = []
    try:
        out.append(learning_curves(results, spec, folder / "learning_curves.png"))
    except Exception as exc:
        log.warning("could not draw the learning curves: %s", exc)
    try:
        out += optuna_plots(entries, spec, folder)
    except Exception as exc:
        log.warning("could not draw Optuna's plots: %s", exc)
    return out
