"""``SweepOutcome``: what ``medtune sweep`` and ``medtune resume`` hand back to their caller.

A module of its own, free of Ray, MLflow and torch, because ``import medtune`` exposes the type
(``medtune.SweepOutcome``) and must stay cheap; ``run/sweep.py``, which fills it in, imports the
whole Tune stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.search.results.leaderboard import LeaderboardEntry, leaderboard_table
from medtune.search.spec.loader import read_yaml
from medtune.search.spec.sweep_spec import SweepSpec


@dataclass
class SweepOutcome:
    """A finished sweep: its ranking, its best configuration and where it lives in Ray and MLflow."""

    run_name: str
    run_path: str  # <storage>/<run name>: Tune's results, the run record, best_config.yaml
    entries: list[LeaderboardEntry]  # every trial, best first
    best_config_path: Path | None  # None when no trial finished an epoch
    parent_run_id: str | None  # the MLflow parent run; None with mlflow.enabled: false
    results: Any  # Tune's ResultGrid
    mlflow_seconds: float = 0.0  # driver time in MLflow calls during the sweep
    fit_seconds: float = 0.0  # wall time of Tuner.fit alone (no data preparation, Ray start, reporting)
    spec: SweepSpec | None = field(default=None, repr=False)  # the validated space that ran
    experiment_id: str | None = None  # the parent run's MLflow experiment
    view_route: str | None = None  # the UI route of the shared runs-table view the sweep stored, if it could
    gpu_busy_pct: float | None = None  # mean GPU utilisation of the driver's node over fit; None without GPU/NVML

    @property
    def best(self) -> LeaderboardEntry | None:
        return self.entries[0] if self.entries else None

    def leaderboard_frame(self) -> Any:
        """The leaderboard as a pandas DataFrame indexed by rank, with the columns of ``leaderboard.csv``."""
        import pandas as pd  # only when asked: pandas is no light import

        if self.spec is None:
            raise ValueError("this outcome carries no spec; read leaderboard.csv from the MLflow parent run")
        header, rows = leaderboard_table(self.entries, self.spec)
        return pd.DataFrame(rows, columns=header).set_index("rank")

    def best_config(self) -> dict[str, Any] | None:
        """The best_config.yaml document (``medtune final`` takes it), or None when no trial finished."""
        if self.best_config_path is None:
            return None
        return read_yaml(self.best_config_path)
