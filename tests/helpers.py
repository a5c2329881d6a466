"""Helpers shared by the tests that drive medtune as separate processes (resume, job submission)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FINISHED_OUTCOMES = ("completed", "stopped_early")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment for a child process: this interpreter's scripts first, the repo importable."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(REPO)
    env.update(HF_HUB_OFFLINE="1", MLFLOW_DISABLE_TELEMETRY="true", RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_runs(client: Any, experiment: str) -> list[Any]:
    """The trial runs of an experiment (runs with a parent)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def finished_trial_ids(client: Any, experiment: str) -> set[str]:
    return {r.data.tags["medtune.trial_id"] for r in child_runs(client, experiment)
            if r.data.tags.get("medtune.outcome") in FINISHED_OUTCOMES}
