"""Writing a sweep's plots as PNGs: the ones that can be drawn, with a warning for any that cannot.

A plot is never worth a failed sweep: every figure is drawn inside its own ``try``, and a study with
too few finished trials gets no study plots at all rather than misleading ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from medtune.search.results.plots._study import trials
from medtune.search.results.plots._style import save
from medtune.search.results.plots.curves import learning_curves
from medtune.search.results.plots.history import optimization_history_figure
from medtune.search.results.plots.importances import param_importances_figure
from medtune.search.results.plots.parallel import parallel_coordinates_figure
from medtune.search.spec.sweep_spec import SweepSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


def optuna_plots(study: Any, spec: SweepSpec, folder: Path) -> list[Path]:
    """The views of the study TPE was told: its history, parallel coordinates and parameter importances.

    They need two finished (COMPLETE) trials; importances also need two searched parameters to rank.
    A view that cannot be drawn is a warning, never a failed sweep.
    """
    complete = trials(study, "COMPLETE")
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
            out.append(save(draw(study, spec), Path(folder) / name))
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
