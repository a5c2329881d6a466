"""Plots of a finished sweep, logged as images on its MLflow parent run.

- ``learning_curves.png``: the objective per epoch for every trial, with where each one ended:
  a cross where ASHA stopped it, a dot where it ran the whole budget;
- Optuna's own views of the search (``optuna.visualization.matplotlib``): parameter importances,
  parallel coordinates and optimisation history, drawn from the study the searcher told its trials
  to (``search/study.py``): finished trials COMPLETE with their best value, ASHA-stopped ones
  PRUNED, exactly what TPE modelled.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

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


def optuna_plots(study: Any, spec: SweepSpec, folder: Path) -> list[Path]:
    """Optuna's views of the study TPE was told: they draw its COMPLETE trials (ASHA-stopped ones are
    PRUNED there, as TPE saw them, and are left out as Optuna's own views leave them out)."""
    plt = _pyplot()
    import optuna
    import optuna.visualization.matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2 or not spec.space:
        log.info("Optuna's views need two trials that ran their full budget; the study has %d (of %d, the "
                 "others stopped early or failed)", len(complete), len(study.trials))
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


def sweep_plots(results: Any, study: Any, spec: SweepSpec, folder: Path) -> list[Path]:
    """Every plot that could be drawn (a plot that fails is a warning, never a failed sweep)."""
    out = []
    try:
        out.append(learning_curves(results, spec, folder / "learning_curves.png"))
    except Exception as exc:
        log.warning("could not draw the learning curves: %s", exc)
    if study is not None:
        try:
            out += optuna_plots(study, spec, folder)
        except Exception as exc:
            log.warning("could not draw Optuna's plots: %s", exc)
    return out
