"""``FinalOutcome``: what ``medtune final`` hands back to its caller.

Its own light module: ``import medtune`` exports it without loading torch, Ray or MLflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FinalOutcome:
    """What a final run produced; the same facts ``report.json`` records, for callers in Python.

    With MLflow: the run, the model, the resolved ``tracking_uri`` (as given, credentials included:
    kept out of the repr) and ``experiment_id``, and
    ``sweep_link`` (the sweep's experiment id, parent run id, metric and mode) when the sweep's run
    was found; all None without MLflow.
    """

    run_id: str | None
    reports: list[Any]
    out_dir: Path
    model_uri: str | None
    epochs: int
    train_seconds: float
    member_configs: list[dict[str, Any]]
    tracking_uri: str | None = field(default=None, repr=False)  # may hold credentials: never shown
    experiment_id: str | None = None
    sweep_link: tuple[str, str, str, str] | None = None

    @property
    def model_dir(self) -> Path:
        """The best model as a bundle (``model/``): what ``medtune predict`` takes as MODEL."""
        return self.out_dir / "model"

    @property
    def html(self) -> Path:
        """The self-contained page (``report.html``): ``IPython.display.IFrame`` shows it in a notebook."""
        return self.out_dir / "report.html"

    def report(self) -> dict[str, Any]:
        """Everything ``report.json`` records (metrics, intervals, thresholds, calibration, configs)."""
        return json.loads((self.out_dir / "report.json").read_text())

    def metrics(self) -> dict[str, tuple[float, float, float]]:
        """The best model's test metrics: name -> (value, 95% CI low, 95% CI high)."""
        first = self.reports[0]
        return {name: (value, *first.intervals[name]) for name, value in first.metrics.items()}
