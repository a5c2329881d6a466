"""A trial's MLflow run: its name, params, metrics, outcome and closing tags, derived from the trial alone.

Light on purpose (no Ray, no MLflow at import): the plots and ``medtune best`` use the same numbers
and names as the callback that writes the runs, and the fail-fast stopper reads failed trials'
errors the same way.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from medtune.search.tracking.run_tags import BEST_EPOCH_TAG, LAST_EPOCH_TAG, best_value_tag
from medtune.trainables.budget import TrialOutcome
from medtune.trainables.objective import LOGGED_METRICS, is_finding_metric

#: Trial-config keys that describe the machine rather than the model; not logged as params.
NOT_PARAMS = ("data_dir", "cache_dir", "weights_dir")


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """The params of a child run: flat trial-config keys as strings (MLflow params are strings)."""
    return {k: "None" if v is None else str(v) for k, v in sorted(config.items()) if k not in NOT_PARAMS}


#: Result keys logged under another MLflow name: the scheduled learning rate of an epoch would
#: otherwise share the name ``lr`` with the searched learning rate (a param) in MLflow's tables.
METRIC_NAMES = {"lr": "lr_scheduled"}


def metric_batch(result: dict[str, Any], step: int) -> list:
    """One epoch's logged metrics (finite numbers only) as MLflow ``Metric``s at ``step``."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    out = []
    for key in (*LOGGED_METRICS, *(k for k in result if is_finding_metric(k))):
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append(Metric(METRIC_NAMES.get(key, key), float(value), now, step))
    return out


def study_number(experiment_tag: str, fallback: int) -> int:
    """A trial's number in the Optuna study: Tune tags trials ``<n>_<config>`` with a counter it
    advances once per suggestion, and the searcher asks the study for one trial per suggestion, so
    it is ``n - 1``: the number optuna-dashboard, the history plot and the legends show too."""
    match = re.match(r"(\d+)_", str(experiment_tag or ""))
    return int(match.group(1)) - 1 if match else fallback


def trial_run_name(number: int, config: dict[str, Any]) -> str:
    """``07 mobilenetv2_100 fd1``: the trial's number, architecture and frozen depth, for MLflow's runs
    table, where an 8-character trial id says nothing (the outcome is added when the trial ends)."""
    parts = [f"{number:02d}", str(config.get("architecture", "?"))]
    if config.get("frozen_depth") is not None:
        parts.append(f"fd{config['frozen_depth']}")
    return " ".join(parts)


def trial_error_message(trial: Any) -> str:
    """The last line of a failed Tune trial's error file (the exception), at most 500 characters.

    ``trial`` is Tune's ``Trial``; only its ``error_file`` is read, so Ray need not be imported here.
    """
    path = getattr(trial, "error_file", None)
    text = ""
    if path and Path(path).is_file():
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return (text or "trial failed (see the Ray trial log)")[:500]


def run_status(outcome: TrialOutcome) -> str:
    """The MLflow run status a trial's run ends with."""
    return "FAILED" if outcome.kind == "failed" else "FINISHED"


def outcome_tags(outcome: TrialOutcome) -> dict[str, str]:
    """``medtune.outcome`` and what goes with it: the last epoch, the error, where it stopped."""
    tags = {LAST_EPOCH_TAG: str(outcome.last_epoch), "medtune.outcome": outcome.kind}
    if outcome.kind == "failed":
        tags["medtune.error"] = outcome.error
    elif outcome.kind == "stopped_early":
        tags["medtune.stopped_at_epoch"] = str(outcome.last_epoch)
    return tags


def closing_tags(outcome: TrialOutcome, run_name: str, metric: str, best: tuple[float, int] | None,
                 checkpoint_epoch: int | None) -> dict[str, str]:
    """The tags a child run ends with: its outcome, its best epoch and value (what the leaderboard
    ranks by and ``medtune best`` reads), its name with the outcome, and the logged checkpoint's epoch."""
    tags = outcome_tags(outcome)
    if best is not None:
        value, epoch = best
        tags[BEST_EPOCH_TAG] = str(epoch)
        tags[best_value_tag(metric)] = repr(value)
    tags["mlflow.runName"] = f"{run_name} {outcome.label}"
    if checkpoint_epoch is not None:
        tags["medtune.best_checkpoint_epoch"] = str(checkpoint_epoch)
    return tags


def best_metrics(metric: str, best: tuple[float, int] | None) -> list:
    """The best value and its epoch as metrics too (step 0): MLflow's runs table sorts and plots
    metrics, and its metric columns show the last epoch's value, not the best when a trial peaked early."""
    if best is None:
        return []
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    value, epoch = best
    return [Metric(f"best_{metric}", value, now, 0), Metric("best_epoch", float(epoch), now, 0)]
