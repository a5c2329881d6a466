"""A trial's MLflow run: its name, its params and its metrics, derived from the trial alone.

Light on purpose (no Ray, no MLflow at import): the plots and ``medtune best`` use the same numbers
and names as the callback that writes the runs.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from medtune.trainables.objective import LOGGED_METRICS

#: Trial-config keys that describe the machine rather than the model; not logged as params.
NOT_PARAMS = ("data_dir", "cache_dir", "weights_dir")


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """The params of a child run: flat trial-config keys as strings (MLflow params are strings)."""
    return {k: "None" if v is None else str(v) for k, v in sorted(config.items()) if k not in NOT_PARAMS}


#: Result keys logged under another MLflow name: the scheduled learning rate of an epoch would
#: otherwise share the name ``lr`` with the searched learning rate (a param) in MLflow's tables.
METRIC_NAMES = {"lr": "lr_scheduled"}


def metric_batch(result: dict[str, Any], step: int) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    out = []
    for key in LOGGED_METRICS:
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
