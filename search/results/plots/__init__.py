"""Plots of a finished sweep, logged as images on its MLflow parent run.

- ``learning_curves.png`` (``curves``): the objective per epoch for every trial, from Tune's
  results, with a cross where a trial was stopped early and a dot where it ran the whole budget;
- ``optimization_history.png`` (``history``), ``parallel_coordinates.png`` (``parallel``) and
  ``param_importances.png`` (``importances``): views of the Optuna study the searcher told its
  trials to, finished trials COMPLETE with their best value, ASHA-stopped ones PRUNED, exactly
  what TPE modelled;
- ``write``: ``sweep_plots`` and ``optuna_plots``, which write the PNGs and turn a plot that cannot
  be drawn into a warning.

The study's views are drawn here with matplotlib rather than taken from
``optuna.visualization.matplotlib``: Optuna's parallel coordinates overlap their labels, its history
puts ticks at half trials, and its importances carry no warning when they come from a handful of
trials. Every plot gives an architecture the same colour (``_style``). The ``*_figure`` functions
return the matplotlib figure (tests read it). Importing this package loads neither matplotlib,
Optuna nor Ray; drawing loads the first two.
"""

from medtune.search.results.plots._axes import Axis, param_axis
from medtune.search.results.plots._style import (
                                                 DPI,
                                                 FIGSIZE,
                                                 PALETTE,
                                                 STOPPED_GREY,
                                                 TITLE_WIDTH,
                                                 architecture_colours,
                                                 known_architectures,
)
from medtune.search.results.plots.curves import (
                                                 MAX_TRIALS_IN_LEGEND,
                                                 TOP_TRIALS_NAMED,
                                                 Curve,
                                                 curves,
                                                 learning_curves,
                                                 learning_curves_figure,
                                                 trial_number,
)
from medtune.search.results.plots.history import optimization_history_figure
from medtune.search.results.plots.importances import (
                                                 MIN_FINISHED_FOR_IMPORTANCES,
                                                 MIN_FINISHED_PER_PARAM,
                                                 importance_caveat,
                                                 importance_evaluator,
                                                 importance_study,
                                                 param_importances_figure,
)
from medtune.search.results.plots.parallel import parallel_coordinates_figure
from medtune.search.results.plots.write import optuna_plots, sweep_plots

__all__ = [
    "DPI", "FIGSIZE", "MAX_TRIALS_IN_LEGEND", "MIN_FINISHED_FOR_IMPORTANCES", "MIN_FINISHED_PER_PARAM", "PALETTE",
    "STOPPED_GREY", "TITLE_WIDTH", "TOP_TRIALS_NAMED", "Axis", "Curve", "architecture_colours", "curves",
    "importance_caveat", "importance_evaluator", "importance_study", "known_architectures", "learning_curves",
    "learning_curves_figure", "optimization_history_figure", "optuna_plots", "param_axis", "param_importances_figure",
    "parallel_coordinates_figure", "sweep_plots", "trial_number",
]
