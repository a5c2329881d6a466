"""What a finished sweep hands back: a leaderboard and the best configuration as a space file.

Trials are ranked by the best value of the objective over their epochs (the epoch whose checkpoint
Tune keeps), so a trial that ASHA stopped early competes with the value it actually reached. The
best configuration is written as an ordinary space file with an empty ``space`` and every chosen
value under ``fixed``: ``medtune validate``/``sweep`` read it back, and so will the final run.
Which way is better is ``medtune.trainables.objective.Objective``; which metrics a row shows is
that module's ``SHOWN_METRICS`` (also importable from here).
"""

from __future__ import annotations

import copy
import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.search.credentials import redact_document
from medtune.search.spec.sweep_spec import SweepSpec, epoch_plan
from medtune.trainables.budget import TrialOutcome
from medtune.trainables.objective import (
    EPOCH,
    SHOWN_METRICS,
    Objective,
    printed_metrics,
    shown_metrics,
    trial_summary,
)


@dataclass
class LeaderboardEntry:
    """One trial's row: its best epoch by the objective, and how it ended."""

    trial_id: str
    config: dict[str, Any]
    best_value: float
    best_epoch: int
    epochs_run: int
    metrics_at_best: dict[str, float]
    error: str | None = None
    #: completed (its whole budget), stopped_early (ASHA or the time budget), failed; "" if unknown
    outcome: str = ""


def leaderboard(results: Any, spec: SweepSpec) -> list[LeaderboardEntry]:
    """Rank the trials of a ``ResultGrid``; failed trials without any result go last."""
    metric = spec.metric.name
    objective = Objective(metric, spec.metric.mode)
    entries: list[LeaderboardEntry] = []
    for result in results:
        frame = result.metrics_dataframe
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        error = str(result.error).strip().splitlines()[-1][:300] if result.error else None
        history = [] if frame is None else [{k: v for k, v in row.items() if v == v}  # NaN: not reported
                                            for row in frame.to_dict("records")]
        outcome = TrialOutcome.of(history[-1], epoch_plan(spec), error).kind if history else \
            "failed" if error else ""
        summary = trial_summary(history, objective)
        if summary is None:
            # No value of the objective: failed, or stopped while racing on one fold (its objective
            # waits for every fold). Either way it ranks after every trial with a value.
            epochs = max((int(row[EPOCH]) for row in history if EPOCH in row), default=0)
            entries.append(LeaderboardEntry(trial_id, dict(result.config or {}), math.nan, 0, epochs, {}, error,
                                            outcome))
            continue
        shown = {k: float(summary.at_best[k]) for k in SHOWN_METRICS if k in summary.at_best}
        entries.append(LeaderboardEntry(trial_id, dict(result.config or {}), summary.best_value, summary.best_epoch,
                                        summary.epochs_run, shown, error, outcome))
    return objective.sorted(entries, key=lambda e: e.best_value)  # stable: ties keep Tune's order


def format_leaderboard(entries: list[LeaderboardEntry], spec: SweepSpec, top: int = 5) -> str:
    """The first ``top`` rows as the console prints them after a sweep."""
    keys = list(spec.space)
    printed = printed_metrics(spec.data.task)
    header = ["rank", "trial", *keys, "epochs", "best_epoch", *printed]
    rows = [header]
    for rank, e in enumerate(entries[:top], start=1):
        rows.append([
            str(rank), e.trial_id, *[_short(e.config.get(k)) for k in keys], str(e.epochs_run), str(e.best_epoch),
            *[_short(e.metrics_at_best.get(k)) for k in printed],
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows]
    return "\n".join([f"Top {min(top, len(entries))} of {len(entries)} trials by "
                      f"{spec.metric.name} ({spec.metric.mode}):",
                      *lines])


def leaderboard_table(entries: list[LeaderboardEntry], spec: SweepSpec) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the leaderboard: what a reader looks for first (rank, trial, outcome, best
    value, epochs), then the searched values only (the fixed ones are in best_config.yaml), then
    the other metrics at the best epoch. ``leaderboard.csv`` and ``leaderboard_frame`` both show it."""
    keys = list(spec.space)
    shown = shown_metrics(spec.data.task)  # val_qwk and val_mae for graded classes only
    header = ["rank", "trial_id", "outcome", f"best_{spec.metric.name}", "best_epoch", "epochs_run",
              *keys, *shown, "error"]
    rows = [[rank, e.trial_id, e.outcome, e.best_value, e.best_epoch, e.epochs_run,
             *[e.config.get(k) for k in keys], *[e.metrics_at_best.get(k) for k in shown], e.error or ""]
            for rank, e in enumerate(entries, start=1)]
    return header, rows


def write_leaderboard_csv(entries: list[LeaderboardEntry], spec: SweepSpec, path: str | Path) -> Path:
    """``leaderboard_table`` as ``leaderboard.csv``."""
    path = Path(path)
    header, rows = leaderboard_table(entries, spec)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def best_config_document(spec: SweepSpec, best: LeaderboardEntry, run_name: str,
                         top: list[LeaderboardEntry] | None = None, **provenance: Any) -> dict[str, Any]:
    """A space file that reproduces the best trial: everything fixed, one sample, no early stopping.

    ``top`` (the leaderboard's first K) adds their searched values under ``provenance.top_configs``
    for ``medtune final --ensemble K``; ``provenance`` adds where the sweep lives in MLflow.
    """
    doc = copy.deepcopy(spec.raw)
    fixed = dict(doc.get("fixed") or {})
    for key in spec.space:
        fixed[key] = best.config[key]
    doc["name"] = f"{spec.name}-best"
    doc["space"] = {}
    doc["fixed"] = fixed
    search = dict(doc.get("search") or {})
    search.pop("time_budget_s", None)  # the sweep's budget, not the final run's
    search.update(num_samples=1, max_concurrent=1,
                  scheduler={"name": "fifo", "max_t": spec.search.scheduler.max_t, "unit": spec.search.scheduler.unit})
    doc["search"] = search
    doc["provenance"] = {
        "sweep": run_name,
        "space_file": spec.source,
        "space_hash": spec.content_hash(),
        "trial_id": best.trial_id,
        "metric": spec.metric.name,
        "best_value": best.best_value,
        "best_epoch": best.best_epoch,
        "epochs_run": best.epochs_run,
        "experiment": spec.experiment_name,
        **{k: v for k, v in provenance.items() if v is not None},
    }
    if top:
        doc["provenance"]["top_configs"] = [{k: e.config[k] for k in spec.space} for e in top]
    return redact_document(doc)  # a tracking URI's password stays in the environment


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
