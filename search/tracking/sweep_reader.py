"""What ``medtune best`` reads from MLflow: a finished sweep's parent run, its artifacts and its trials' runs.

A sweep's parent run holds the validated space (``space.yaml``) and the ranking (``leaderboard.csv``);
its child runs hold each trial's flat params, its closing tags and its per-epoch metrics. Everything
comes back as plain values (``ParentRun``, ``TrialRun``, dicts and lists): no MLflow object leaves
this module, so the ranking in ``results/best.py`` needs no MLflow.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from medtune.search.spec.sweep_spec import SpecError
from medtune.search.tracking.client import mlflow_client
from medtune.search.tracking.run_tags import (
    BEST_EPOCH_TAG,
    KIND_TAG,
    LAST_EPOCH_TAG,
    RUN_NAME_TAG,
    TRIAL_ID_TAG,
    best_value_tag,
)

#: A sweep's parent runs that finished: ``medtune best`` skips FAILED and RUNNING ones.
FINISHED_SWEEPS = f"tags.`{KIND_TAG}` = 'sweep' and attributes.status = 'FINISHED'"
#: Child runs per search request (MLflow returns at most a few thousand at once).
PAGE_SIZE = 1000


@dataclass(frozen=True)
class ParentRun:
    run_id: str
    experiment_id: str
    run_name: str  # the sweep's Ray run name (tag ``medtune.run_name``), else MLflow's run name


@dataclass(frozen=True)
class TrialRun:
    """One trial's child run: its params (flat trial-config keys, as strings) and its tags."""

    run_id: str
    params: dict[str, str]
    tags: dict[str, str]

    @property
    def trial_id(self) -> str:
        return self.tags.get(TRIAL_ID_TAG, self.run_id)

    def best(self, metric: str) -> tuple[float, int] | None:
        """(best value of ``metric``, its epoch) from the tags the run was closed with; None when not closed."""
        value, epoch = self.tags.get(best_value_tag(metric)), self.tags.get(BEST_EPOCH_TAG)
        return None if value is None or epoch is None else (float(value), int(epoch))

    def last_epoch(self, default: int) -> int:
        """The epoch the trial ended at (its closing tag), else ``default``."""
        return int(self.tags.get(LAST_EPOCH_TAG, default))


class SweepReader:
    """Reads one tracking store (``tracking_uri`` as resolved, with its credentials)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client = mlflow_client(tracking_uri)

    def parent(self, experiment: str, parent_run_id: str | None, where: str) -> ParentRun:
        """Run ``parent_run_id``, else the newest finished sweep of ``experiment``; ``SpecError`` if none."""
        if parent_run_id:
            run = self._client.get_run(parent_run_id)
        else:
            exp = self._client.get_experiment_by_name(experiment)
            if exp is None:
                raise SpecError(where, [("experiment", f"no MLflow experiment named {experiment!r} there")])
            runs = self._client.search_runs([exp.experiment_id], filter_string=FINISHED_SWEEPS,
                                            order_by=["attributes.start_time DESC"], max_results=1)
            if not runs:
                raise SpecError(where, [("experiment",
                                         f"{experiment!r} has no finished medtune sweep (parent run) yet")])
            run = runs[0]
        return ParentRun(run.info.run_id, run.info.experiment_id, run.data.tags.get(RUN_NAME_TAG, run.info.run_name))

    def space_document(self, run_id: str, where: str) -> Any:
        """The parent run's ``space.yaml``, parsed; ``SpecError`` when the run has none."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self._download(run_id, "space.yaml", tmp)
            except Exception as exc:
                raise SpecError(where, [("parent run", f"run {run_id} has no space.yaml artifact ({exc}); "
                                                       "was it made by 'medtune sweep'?")]) from None
            return yaml.safe_load(Path(local).read_text())

    def leaderboard_rows(self, run_id: str) -> list[dict[str, str]] | None:
        """The rows of the parent run's ``leaderboard.csv``, or None when it has none (a sweep that
        ended while MLflow was away)."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self._download(run_id, "leaderboard.csv", tmp)
            except Exception:
                return None
            with open(local, newline="") as f:
                return list(csv.DictReader(f))

    def trial_runs(self, parent: ParentRun) -> list[TrialRun]:
        """Every child run of the sweep, page by page."""
        runs: list[TrialRun] = []
        token = None
        while True:
            page = self._client.search_runs([parent.experiment_id], max_results=PAGE_SIZE, page_token=token,
                                            filter_string=f"tags.`mlflow.parentRunId` = '{parent.run_id}'")
            runs.extend(TrialRun(r.info.run_id, dict(r.data.params), dict(r.data.tags)) for r in page)
            token = page.token
            if not token:
                return runs

    def history(self, run_id: str, metric: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of ``metric``, in MLflow's order."""
        return [(m.step, m.value) for m in self._client.get_metric_history(run_id, metric)]

    def values_at(self, run_id: str, metrics: Iterable[str], step: int) -> dict[str, float]:
        """Each of ``metrics`` at ``step`` (the last value logged there), where it was logged."""
        out = {}
        for name in metrics:
            at_step = [value for s, value in self.history(run_id, name) if s == step]
            if at_step:
                out[name] = at_step[-1]
        return out

    def _download(self, run_id: str, path: str, folder: str) -> str:
        import mlflow  # after mlflow_client set MLflow's environment defaults

        return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=folder,
                                                   tracking_uri=self.tracking_uri)


def experiment_of(tracking_uri: str, run_id: str) -> str:
    """The experiment id of a run (for a link to it)."""
    return mlflow_client(tracking_uri).get_run(run_id).info.experiment_id
