"""medtune's Python API, for notebooks and scripts: the same code paths as the ``medtune`` CLI.

    import medtune

    sweep = medtune.sweep("spaces/demo.yaml", overrides={"search.num_samples": 4})
    sweep.leaderboard_frame()            # pandas: rank, trial, outcome, best value, params, metrics
    best = medtune.best("pneumonia-demo", tracking_uri="sqlite:///mlruns.db")
    report = medtune.final(best.path, out="final")
    report.metrics()                     # test metrics of the best model, with their 95% CIs
    rows = medtune.predict("final", "new-xrays/", out="predictions.csv")  # docs/predict.md

Importing this package is cheap: torch, Ray and MLflow load when a function is called.
"""

from importlib.metadata import PackageNotFoundError, version

from medtune.api import (
    BestConfig,
    FinalOutcome,
    PredictOutcome,
    SweepOutcome,
    Validation,
    best,
    final,
    predict,
    resume,
    sweep,
    validate,
)

try:
    __version__ = version("medtune")  # the installed distribution's (pip show medtune)
except PackageNotFoundError:  # a bare checkout, never installed
    __version__ = "unknown"
__all__ = ["sweep", "resume", "best", "final", "predict", "validate", "SweepOutcome", "BestConfig", "FinalOutcome",
           "PredictOutcome", "Validation", "__version__"]
