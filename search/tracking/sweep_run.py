"""The sweep's MLflow parent run, written from the driver: ``SweepRun``, from its start to its end.

One parent run per sweep; its trials are child runs (``callback.py``). The parent holds what
``medtune best`` and a reader of MLflow's UI come for: the library versions and the data
fingerprint as tags, the search settings as params, the validated space as ``space.yaml`` (what
``medtune best`` rebuilds the sweep from), and at the end the leaderboard, ``best_config.yaml``,
ASHA's rungs, the plots, the best checkpoint as an MLflow model, a shared runs-table view and the
run's note. Whatever ends a sweep early leaves the run FAILED with the reason (``failed_on_exit``),
never RUNNING, so ``medtune best`` skips it and finds the previous finished sweep.

The driver (``run/sweep.py``) hands this module files and values; only this module talks to MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import optuna
import ray
import timm
import torch

from medtune.search.credentials import redact_document, redact_text, redact_uri, with_credentials_from_environment
from medtune.search.locations import is_remote
from medtune.search.spec.loader import dump_yaml
from medtune.search.spec.sweep_spec import SweepSpec
from medtune.search.tracking.client import ensure_experiment, mlflow_client, resolved_tracking_uri
from medtune.search.tracking.models import EXAMPLE_IMAGES, log_image_model
from medtune.search.tracking.run_notes import NOTE_TAG, sweep_note
from medtune.search.tracking.run_tags import KIND_TAG, RUN_NAME_TAG, run_tags
from medtune.search.tracking.trial_runs import trial_params
from medtune.search.tracking.ui_links import shared_view_tag, sweep_view_columns
from medtune.trainables.checkpoints import load_checkpoint
from medtune.trainables.data import DataConfig, load_splits
from medtune.trainables.evaluate import model_from_checkpoint
from medtune.trainables.model_bundle import write_bundle
from medtune.trainables.objective import EPOCH

if TYPE_CHECKING:  # mlflow itself is imported in the functions, after ``mlflow_client`` has set its
    from mlflow import (
        MlflowClient,  # environment defaults (telemetry off, fast-failing HTTP): MLflow reads them on import
    )

log = logging.getLogger(__name__)

#: The registry alias of the version ``medtune sweep`` registers (``final`` registers ``champion``).
SWEEP_BEST_ALIAS = "sweep-best"
#: The reason a run was marked FAILED is cut to this many characters (an MLflow tag value).
FAILURE_REASON_CHARS = 500


def sweep_tags(spec: SweepSpec, data_fingerprint: str, run_name: str) -> dict[str, str]:
    """The parent run's tags: what ran, on which data, with which libraries."""
    return run_tags({
        KIND_TAG: "sweep",
        RUN_NAME_TAG: run_name,
        "medtune.space_file": spec.source,
        "medtune.space_hash": spec.content_hash(),
        "medtune.data_fingerprint": data_fingerprint,
        "medtune.metric": f"{spec.metric.name} ({spec.metric.mode})",
        "version.ray": ray.__version__,
        "version.optuna": optuna.__version__,
        "version.timm": timm.__version__,
        "version.torch": torch.__version__,
    })


def sweep_params(spec: SweepSpec) -> dict[str, str]:
    """The parent run's params: the search settings (the trials' own values are their runs' params)."""
    s = spec.search
    values = {
        "num_samples": s.num_samples, "max_concurrent": s.max_concurrent, "sampler": s.sampler.name,
        "sampler_seed": s.sampler.seed, "scheduler": s.scheduler.name, "max_t": s.scheduler.max_t,
        "grace_period": s.scheduler.grace_period, "reduction_factor": s.scheduler.reduction_factor,
        "budget_unit": s.scheduler.unit, "cv_folds": s.cv,
        "metric": spec.metric.name, "mode": spec.metric.mode, "data_source": spec.data.source,
        "cpu_per_trial": spec.resources.cpu, "gpu_per_trial": spec.resources.gpu,
        "space": ", ".join(f"{k}={d.to_yaml()}" for k, d in spec.space.items())[:6000],
    }
    return {k: str(v) for k, v in values.items()}


def log_space_document(client: "MlflowClient", run_id: str, spec: SweepSpec) -> None:
    """The validated space (after --set) as ``space.yaml``: what ``medtune best`` rebuilds the sweep from."""
    with tempfile.TemporaryDirectory() as tmp:
        path = dump_yaml(redact_document(spec.raw), Path(tmp) / "space.yaml")
        client.log_artifact(run_id, str(path))


def shared_view(experiment_id: str, run_id: str, spec: SweepSpec) -> tuple[str, str, str]:
    """(experiment tag key, value, route) of the sweep's shared runs-table view (``ui_links.py``)."""
    return shared_view_tag(experiment_id, run_id, spec.metric.name, spec.metric.mode, sweep_view_columns(spec.space))


def write_shared_view(client: "MlflowClient", experiment_id: str, run_id: str, spec: SweepSpec) -> str | None:
    """The runs table of this sweep's trials with their best value and searched values as columns,
    stored as MLflow's shared view (an experiment tag): the route to it, or None if it could not be
    written (the plain, column-less link is used then)."""
    key, value, route = shared_view(experiment_id, run_id, spec)
    try:
        client.set_experiment_tag(experiment_id, key, value)
    except Exception as exc:  # e.g. a user who may log runs but not edit the experiment
        log.warning("could not store the sweep's runs-table view in MLflow: %s", redact_text(str(exc)))
        return None
    return route


class SweepRun:
    """The sweep's parent run, with the client that writes it."""

    def __init__(self, client: "MlflowClient", run_id: str, experiment_id: str, tracking_uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri  # what the trials' callback logs to
        self.view_route: str | None = None  # set by ``finish`` when the shared view was stored
        #: More metrics of the whole sweep, logged with the totals at its end (``gpu_busy_pct``, docs/gpu.md).
        self.totals: dict[str, float] = {}

    @classmethod
    def start(cls, spec: SweepSpec, run_name: str, data_fingerprint: str) -> "SweepRun":
        """A new parent run (its experiment created if needed), tagged ``sweep_tags``."""
        tracking_uri = resolved_tracking_uri(spec.mlflow.tracking_uri)
        client = mlflow_client(tracking_uri)
        experiment_id = ensure_experiment(client, spec.experiment_name, spec.mlflow.artifact_location)
        run = client.create_run(experiment_id, run_name=run_name, tags=sweep_tags(spec, data_fingerprint, run_name))
        return cls(client, run.info.run_id, experiment_id, tracking_uri)

    @classmethod
    def reopen(cls, recorded_uri: str, run_id: str) -> "SweepRun":
        """A resumed sweep's parent run, RUNNING again, its ``medtune.resumed`` count one up.
        ``recorded_uri`` is the run record's (redacted) tracking URI: credentials come from the environment."""
        client = mlflow_client(with_credentials_from_environment(recorded_uri))
        client.update_run(run_id, status="RUNNING")
        run = client.get_run(run_id)
        client.set_tag(run_id, "medtune.resumed", str(int(run.data.tags.get("medtune.resumed", "0")) + 1))
        return cls(client, run_id, run.info.experiment_id, client.tracking_uri)

    def log_space(self, spec: SweepSpec) -> None:
        """The search settings as params and the validated space as ``space.yaml``."""
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in sweep_params(spec).items()])
        log_space_document(self.client, self.run_id, spec)

    def mark_failed(self, exc: BaseException) -> None:
        """FAILED, with the reason as the tag ``medtune.failure``; MLflow being away too is only a warning."""
        reason = redact_text(f"{type(exc).__name__}: {exc}".strip())[:FAILURE_REASON_CHARS]
        try:
            self.client.set_tag(self.run_id, "medtune.failure", reason)
            self.client.set_terminated(self.run_id, status="FAILED")
        except Exception as mlflow_exc:  # the original error matters more
            log.warning("could not mark the parent run as failed: %s", mlflow_exc)

    def finish(self, spec: SweepSpec, entries: Sequence[Any], files: Sequence[Path],
               draw_plots: Callable[[], Sequence[Path]], results: Any) -> str | None:
        """The end of the sweep: its files (``leaderboard.csv``, ``best_config.yaml``, ``asha_rungs.json``),
        its ``plots/``, the best trial's model, the totals, the shared view and the note; then FINISHED.
        ``entries`` are the leaderboard's, best first. The plots are drawn only once the files are
        logged, so a figure that fails cannot cost the results. Returns the shared view's route, or None."""
        logged = []
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
            logged.append(path.name)
        plots = draw_plots()
        if plots:
            self.client.log_artifacts(self.run_id, str(plots[0].parent), artifact_path="plots")
            logged += [f"plots/{p.name}" for p in plots]
        ranked = [e for e in entries if e.best_epoch > 0]
        if ranked:
            self.log_best_model(spec, ranked[0].trial_id, results)
        self.view_route = self._close(spec, entries, ranked, logged)
        return self.view_route

    def _close(self, spec: SweepSpec, entries: Sequence[Any], ranked: Sequence[Any], logged: list[str]) -> str | None:
        """The totals, the shared view and the note, in one batch; then FINISHED. Returns the view's route."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric("trials", float(len(entries)), now, 0),
                   Metric("total_epochs", float(sum(e.epochs_run for e in entries)), now, 0),
                   *(Metric(name, float(value), now, 0) for name, value in self.totals.items())]
        tags = []
        if ranked:
            metrics.append(Metric(f"best_{spec.metric.name}", ranked[0].best_value, now, 0))
            tags.append(RunTag("medtune.best_trial", ranked[0].trial_id))
        run = self.client.get_run(self.run_id)
        route = write_shared_view(self.client, run.info.experiment_id, self.run_id, spec)
        note = sweep_note(self.client, run.info.experiment_id, self.run_id,
                          run.data.tags.get(RUN_NAME_TAG, run.info.run_name), spec, list(entries), logged, route)
        tags.append(RunTag(NOTE_TAG, note))
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        self.client.set_terminated(self.run_id, status="FINISHED")
        return route

    def log_best_model(self, spec: SweepSpec, trial_id: str, results: Any) -> None:
        """The best trial's best checkpoint as an MLflow model that takes raw images on this run
        (``models.log_image_model``: its bundle, without an operating point, so it predicts the most
        probable class), registered if asked. A model that cannot be logged is a warning: it must
        not fail a finished sweep."""
        best = next((r for r in results if (r.metrics or {}).get("trial_id") == trial_id), None)
        checkpoint = best.get_best_checkpoint(spec.metric.name, spec.metric.mode) if best is not None else None
        if checkpoint is None:
            log.warning("the best trial %s has no checkpoint to log as a model", trial_id)
            return
        try:
            with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory(prefix="medtune-bundle-") as tmp:
                model, cfg = model_from_checkpoint(folder)
                state = load_checkpoint(folder)
                split = load_splits(DataConfig.from_trial(cfg)).val
                bundle = write_bundle(Path(tmp) / "bundle", model, cfg.to_dict(), tuple(state["class_names"]),
                                      kind="sweep-trial", provenance={"sweep": spec.name, "trial_id": trial_id,
                                                                      "epoch": state.get("epoch")},
                                      image_channels=int(split.images.shape[-1]))
                run = self.client.get_run(self.run_id)
                # What the Models tab shows for it: the model's own hyperparameters and its val metrics at
                # the checkpointed epoch (not the sweep's settings, which are the parent run's params).
                metrics = {k: v for k, v in (state.get("metrics") or {}).items()
                           if (k.startswith("val_") or k == EPOCH) and isinstance(v, (int, float)) and math.isfinite(v)}
                logged = log_image_model(self.client.tracking_uri, run.info.experiment_id, self.run_id, bundle,
                                         split.images[:EXAMPLE_IMAGES], spec.mlflow.registered_model_name,
                                         name=f"sweep-best-{cfg.architecture}", params=trial_params(cfg.to_dict()),
                                         metrics=metrics, alias=SWEEP_BEST_ALIAS)
            self.client.set_tag(self.run_id, "medtune.best_model_uri", logged.uri)
        except Exception as exc:
            log.warning("could not log the best model of trial %s as an MLflow model: %s", trial_id,
                        redact_text(str(exc)))


@contextmanager
def failed_on_exit(run: SweepRun | None) -> Iterator[None]:
    """Whatever ends the sweep early (an exception, Ctrl-C, a failed ``-o`` write) marks ``run``
    FAILED with the reason before it propagates; with MLflow off (``run`` None) it only propagates."""
    try:
        yield
    except BaseException as exc:
        if run is not None:
            run.mark_failed(exc)
        raise


def report_unlogged(unlogged: list[str], tracking_uri: str, run_path: str) -> None:
    """MLflow stayed away: say what is missing there (``mlflow_unlogged.json`` in the run folder, or
    here for a run folder that is a URI) and where the complete results are."""
    listing = Path("mlflow_unlogged.json") if is_remote(run_path) else Path(run_path) / "mlflow_unlogged.json"
    listing.write_text(redact_text(json.dumps(unlogged, indent=1)))
    print(f"medtune: {len(unlogged)} MLflow operations could not be logged to {redact_uri(tracking_uri)} "
          f"(listed in {listing}); every trial's metrics and checkpoints are in the Ray results at {run_path}.",
          file=sys.stderr, flush=True)
