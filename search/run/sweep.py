"""The sweep driver: prepare, run the Tuner, rank, write the best configuration.

Order matters: everything that can fail on bad input (the spec, the data, a GPU request on a
cluster without GPUs; ``search.preflight``) fails here before a single trial is scheduled. The data
is decoded into the node's cache before the Tuner starts, so trials on the driver's node find it
ready. Whatever ends the sweep early leaves its MLflow parent run FAILED, with the reason.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from medtune.search.credentials import redact_document, redact_text, redact_uri, with_credentials_from_environment
from medtune.search.spec.loader import dump_yaml
from medtune.search.run.preflight import (check_cluster_resources, check_not_in_job_copy, check_output_path, check_storage,
                              prepare_data, resolved_spec)
from medtune.search.run.ray_node import init_ray
from medtune.search.tracking.run_tags import run_tags
from medtune.search.results.leaderboard import (LeaderboardEntry, best_config_document, format_leaderboard, leaderboard,
                            write_leaderboard_csv)
from medtune.search.spec.sweep_spec import SpecError, SweepSpec
from medtune.search.run.study import dashboard_command, searcher_study, study_location
from medtune.trainables.budget import TIME_ATTR

log = logging.getLogger(__name__)

#: The registry alias of the version ``medtune sweep`` registers (``final`` registers ``champion``).
SWEEP_BEST_ALIAS = "sweep-best"

@dataclass
class SweepOutcome:
    run_name: str
    run_path: str
    entries: list[LeaderboardEntry]
    best_config_path: Path | None
    parent_run_id: str | None
    results: Any
    mlflow_seconds: float = 0.0  # driver time in MLflow calls during the sweep
    fit_seconds: float = 0.0  # wall time of Tuner.fit alone (no data preparation, Ray start, reporting)
    spec: SweepSpec | None = field(default=None, repr=False)  # the validated space that ran

    @property
    def best(self) -> LeaderboardEntry | None:
        return self.entries[0] if self.entries else None

    def leaderboard_frame(self) -> Any:
        """The leaderboard as a pandas DataFrame indexed by rank, with the columns of ``leaderboard.csv``."""
        import pandas as pd

        from medtune.search.results.leaderboard import leaderboard_table

        if self.spec is None:
            raise ValueError("this outcome carries no spec; read leaderboard.csv from the MLflow parent run")
        header, rows = leaderboard_table(self.entries, self.spec)
        return pd.DataFrame(rows, columns=header).set_index("rank")

    def best_config(self) -> dict[str, Any] | None:
        """The best_config.yaml document (``medtune final`` takes it), or None when no trial finished."""
        if self.best_config_path is None:
            return None
        from medtune.search.spec.loader import read_yaml

        return read_yaml(self.best_config_path)

def sweep_tags(spec: SweepSpec, data_fingerprint: str, run_name: str) -> dict[str, str]:
    import optuna
    import ray
    import timm
    import torch

    return run_tags({
        "medtune.kind": "sweep",
        "medtune.run_name": run_name,
        "medtune.space_file": spec.source,
        "medtune.space_hash": spec.content_hash(),
        "medtune.data_fingerprint": data_fingerprint,
        "medtune.metric": f"{spec.metric.name} ({spec.metric.mode})",
        "version.ray": ray.__version__,
        "version.optuna": optuna.__version__,
        "version.timm": timm.__version__,
        "version.torch": torch.__version__,
    })

def default_run_name(spec: SweepSpec) -> str:
    return f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"

#: Written into the run folder when a sweep starts: what ``medtune resume`` needs besides Ray's
#: own experiment state (the validated spec document, the MLflow parent run).
SWEEP_RECORD = "medtune_sweep.json"

def _prepare(spec: SweepSpec) -> tuple[SweepSpec, str]:
    """Everything that can fail on bad input, before a trial is scheduled; returns the spec with
    its data-dependent settings resolved, and the data fingerprint."""
    from medtune.search.tracking.client import check_tracking_server
    from medtune.search.spec.advice import small_data_warnings

    check_not_in_job_copy(spec)
    if spec.mlflow.enabled:
        check_tracking_server(spec.mlflow.tracking_uri, spec.source)
    spec, summary = resolved_spec(spec)
    for warning in small_data_warnings(spec, summary):
        log.warning(warning)
    check_storage(spec)
    fingerprint = prepare_data(spec)
    init_ray()
    check_cluster_resources(spec)
    return spec, fingerprint

def run_path_of(spec: SweepSpec, run_name: str) -> str:
    from medtune.search.run.tuner import storage_path

    return f"{storage_path(spec).rstrip('/')}/{run_name}"

def write_sweep_record(run_path: str, record: dict[str, Any]) -> None:
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(run_path if "://" in run_path else Path(run_path).resolve().as_uri())
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{SWEEP_RECORD}") as f:
        f.write(json.dumps(redact_document(record), indent=1, default=str).encode())

def read_sweep_record(run_path: str) -> dict[str, Any]:
    """The record of a sweep that ``medtune resume`` continues; a clear error when it is not one."""
    import pyarrow.fs

    uri = run_path if "://" in run_path else Path(run_path).expanduser().resolve().as_uri()
    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    try:
        with fs.open_input_stream(f"{path}/{SWEEP_RECORD}") as f:
            record = json.loads(f.read().decode())
    except (FileNotFoundError, OSError) as exc:
        raise SpecError(run_path, [("<run>", f"not a medtune sweep folder: {SWEEP_RECORD} not found there "
                                             f"(expected <storage>/<run name>/, as printed by 'medtune sweep'); {exc}")]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(run_path, [(SWEEP_RECORD, f"not readable JSON ({exc}); the file is damaged, so this sweep "
                                                  "cannot be resumed from it")]) from None
    missing = [key for key in ("spec", "run_name") if not isinstance(record, dict) or key not in record]
    if missing:
        raise SpecError(run_path, [(f"{SWEEP_RECORD}: {key}", "missing; expected the record 'medtune sweep' writes "
                                                             "(the validated space and the run name)") for key in missing])
    return record

def run_sweep(spec: SweepSpec, *, run_name: str | None = None, best_config_out: str | Path | None = None) -> SweepOutcome:
    """Run the whole sweep and return its ranked results."""
    from medtune.search.run.searcher import epoch_plan
    from medtune.search.spec.sweep_spec import folder_name_problem
    from medtune.search.tracking.callback import MlflowTrialCallback
    from medtune.search.tracking.client import ensure_experiment, mlflow_client, resolved_tracking_uri
    from medtune.search.run.tuner import build_tuner

    if run_name is not None and (problem := folder_name_problem(run_name)):
        raise SpecError(spec.source, [("--name", problem)])
    if best_config_out is not None:
        check_output_path(best_config_out, "-o", spec.source)
    run_name = run_name or default_run_name(spec)
    spec, fingerprint = _prepare(spec)

    from medtune.search.run.fail_fast import fail_fast_for

    callbacks: list[Any] = [fail_fast_for(spec.search.num_samples, spec.search.max_concurrent)]
    client = parent_run_id = experiment_id = tracking_uri = None
    if spec.mlflow.enabled:
        tracking_uri = resolved_tracking_uri(spec.mlflow.tracking_uri)
        client = mlflow_client(tracking_uri)
        experiment_id = ensure_experiment(client, spec.experiment_name, spec.mlflow.artifact_location)
        parent = client.create_run(experiment_id, run_name=run_name, tags=sweep_tags(spec, fingerprint, run_name))
        parent_run_id = parent.info.run_id
    with parent_failed_on_exit(client, parent_run_id):
        if client is not None:
            client.log_batch(parent_run_id, params=_parent_params(spec))
            _log_space_document(client, parent_run_id, spec)
            callbacks.append(MlflowTrialCallback(tracking_uri, experiment_id, parent_run_id,
                                                 spec.metric.name, spec.metric.mode, epoch_plan(spec)))
        tuner = build_tuner(spec, run_name, callbacks=callbacks)
        run_path = run_path_of(spec, run_name)
        if command := dashboard_command(study_location(spec.search.sampler.storage, run_path)):
            print(f"Optuna study {run_name!r}, live: {command}", flush=True)
        write_sweep_record(run_path, {"spec": spec.raw, "source": spec.source, "run_name": run_name,
                                      "parent_run_id": parent_run_id, "experiment_id": experiment_id,
                                      "tracking_uri": tracking_uri})
        tracker = next((c for c in callbacks if isinstance(c, MlflowTrialCallback)), None)
        return _fit_and_finish(tuner, spec, run_name, run_path, client, parent_run_id, best_config_out, tracker,
                               callbacks[0])

@contextmanager
def parent_failed_on_exit(client: Any, run_id: str | None) -> Iterator[None]:
    """Whatever ends the sweep early (an exception, Ctrl-C, a failed ``-o`` write), its MLflow parent
    run is marked FAILED with the reason as a tag, never left RUNNING: ``medtune best`` then skips it
    and still finds the previous finished sweep."""
    try:
        yield
    except BaseException as exc:
        if client is not None and run_id is not None:
            reason = redact_text(f"{type(exc).__name__}: {exc}".strip())[:500]
            try:
                client.set_tag(run_id, "medtune.failure", reason)
                client.set_terminated(run_id, status="FAILED")
            except Exception as mlflow_exc:  # MLflow away too: the original error matters more
                log.warning("could not mark the parent run as failed: %s", mlflow_exc)
        raise

def resume_sweep(run_path: str, *, best_config_out: str | Path | None = None) -> SweepOutcome:
    """Continue a sweep whose driver died or whose job was stopped (``Tuner.restore``).

    Finished trials are not rerun; unfinished ones restart from their last checkpoint; the
    searcher (Optuna's study) and the MLflow callback (trial -> child run) come back from the
    experiment state Tune saved, so TPE keeps what it learned and no child run is duplicated.
    """
    from ray import tune

    from medtune.search.spec.sweep_spec import validate_spec
    from medtune.search.tracking.client import mlflow_client
    from medtune.search.run.tuner import trial_trainable

    record = read_sweep_record(run_path)
    if best_config_out is not None:
        check_output_path(best_config_out, "-o", run_path)
    spec = validate_spec(record["spec"], source=record.get("source", run_path))
    run_path = run_path if "://" in run_path else str(Path(run_path).expanduser().resolve())
    spec, _ = _prepare(spec)
    client = parent_run_id = None
    if spec.mlflow.enabled and record.get("parent_run_id"):
        client = mlflow_client(with_credentials_from_environment(record["tracking_uri"]))
        parent_run_id = record["parent_run_id"]
        client.update_run(parent_run_id, status="RUNNING")
        resumed = int(client.get_run(parent_run_id).data.tags.get("medtune.resumed", "0")) + 1
        client.set_tag(parent_run_id, "medtune.resumed", str(resumed))
    with parent_failed_on_exit(client, parent_run_id):
        if not tune.Tuner.can_restore(run_path):
            raise SpecError(run_path, [("<run>", "Ray Tune finds no experiment state to restore there")])
        tuner = tune.Tuner.restore(run_path, trainable=trial_trainable(spec),
                                   resume_unfinished=True, resume_errored=True)
        from medtune.search.tracking.callback import MlflowTrialCallback

        from medtune.search.run.fail_fast import FailFast

        tracker = _callback_of(tuner, MlflowTrialCallback)
        if tracker is not None and client is not None:
            tracker.tracking_uri = client.tracking_uri  # the saved state holds it without credentials
        return _fit_and_finish(tuner, spec, record["run_name"], run_path, client, parent_run_id, best_config_out,
                               tracker, _callback_of(tuner, FailFast))

def _callback_of(tuner: Any, kind: type) -> Any:
    """The tuner's callback of this kind (a restored tuner's come back from its saved state), or None."""
    return next((c for c in tuner._local_tuner.get_run_config().callbacks or [] if isinstance(c, kind)), None)

def _fit_and_finish(tuner: Any, spec: SweepSpec, run_name: str, run_path: str, client: Any,
                    parent_run_id: str | None, best_config_out: str | Path | None, tracker: Any = None,
                    fail_fast: Any = None) -> SweepOutcome:
    fit_started = time.perf_counter()
    unlogged: list[str] = []
    try:
        results = tuner.fit()
    finally:
        # The trials' MLflow calls run on the callback's thread: let it finish, even when fit failed
        # (the caller's parent_failed_on_exit then marks the parent run FAILED).
        unlogged = tracker.finish() if tracker is not None else []
    fit_seconds = time.perf_counter() - fit_started

    entries = leaderboard(results, spec)
    print(format_leaderboard(entries, spec), flush=True)
    if fail_fast is not None and fail_fast.reason:
        import sys

        print(f"medtune: {fail_fast.reason}", file=sys.stderr, flush=True)
    best_path = None
    ranked = [e for e in entries if e.best_epoch > 0]
    if ranked:
        doc = best_config_document(spec, ranked[0], run_name, top=ranked[:5], parent_run_id=parent_run_id)
        if best_config_out:
            best_path = Path(best_config_out)
        elif "://" in run_path:
            best_path = Path("best_config.yaml")
        else:
            best_path = Path(run_path) / "best_config.yaml"
        dump_yaml(doc, best_path)
        if "://" in run_path:
            _upload(best_path, f"{run_path}/best_config.yaml")
        print(f"Best configuration ({spec.metric.name} = {ranked[0].best_value:.4f}, trial {ranked[0].trial_id}, "
              f"epoch {ranked[0].best_epoch}) written to {best_path}", flush=True)
    rungs_path = _write_rungs(tuner, spec, run_path)
    if client is not None:
        try:
            _finish_parent_run(client, parent_run_id, entries, spec, best_path, results, rungs_path,
                               searcher_study(tuner._local_tuner._tune_config.search_alg))
        except Exception as exc:
            unlogged.append(f"leaderboard, best config and end of the sweep's parent run ({type(exc).__name__})")
    if unlogged:
        _report_unlogged(unlogged, spec, run_path)
    return SweepOutcome(run_name, run_path, entries, best_path, parent_run_id, results,
                        tracker.seconds_logging if tracker is not None else 0.0, fit_seconds, spec)

def _log_best_model(client: Any, run_id: str, entries: list[LeaderboardEntry], spec: SweepSpec, results: Any) -> None:
    """The sweep's best checkpoint as an MLflow PyTorch model on the parent run (registered if asked)."""
    from medtune.search.tracking.models import log_pt2_model
    from medtune.search.tracking.trial_runs import trial_params
    from medtune.trainables.data import load_splits
    from medtune.trainables.evaluate import model_from_checkpoint
    from medtune.trainables.train import data_config, load_checkpoint

    ranked = [e for e in entries if e.best_epoch > 0]
    if not ranked:
        return
    best = next((r for r in results if (r.metrics or {}).get("trial_id") == ranked[0].trial_id), None)
    checkpoint = best.get_best_checkpoint(spec.metric.name, spec.metric.mode) if best is not None else None
    if checkpoint is None:
        log.warning("the best trial %s has no checkpoint to log as a model", ranked[0].trial_id)
        return
    try:
        with checkpoint.as_directory() as folder:
            model, cfg = model_from_checkpoint(folder)
            state_metrics = load_checkpoint(folder).get("metrics") or {}
        split = load_splits(data_config(cfg)).val
        run = client.get_run(run_id)
        # What the Models tab shows for it: the model's own hyperparameters and its val metrics at
        # the checkpointed epoch (not the sweep's settings, which are the parent run's params).
        metrics = {k: v for k, v in state_metrics.items()
                   if (k.startswith("val_") or k == "epoch") and isinstance(v, (int, float)) and math.isfinite(v)}
        logged = log_pt2_model(client.tracking_uri, run.info.experiment_id, run_id, model, cfg, split,
                               spec.mlflow.registered_model_name, name=f"sweep-best-{cfg.architecture}",
                               params=trial_params(cfg.to_dict()), metrics=metrics, alias=SWEEP_BEST_ALIAS)
        client.set_tag(run_id, "medtune.best_model_uri", logged.uri)
    except Exception as exc:  # a model-format problem must not fail a finished sweep
        log.warning("could not log the best model of trial %s as an MLflow model: %s", ranked[0].trial_id, exc)

def shared_view(experiment_id: str, run_id: str, spec: SweepSpec) -> tuple[str, str, str]:
    """(experiment tag key, value, route) of the sweep's shared runs-table view (``search/tracking/ui_links.py``)."""
    from medtune.search.tracking.ui_links import shared_view_tag, sweep_view_columns

    return shared_view_tag(experiment_id, run_id, spec.metric.name, spec.metric.mode, sweep_view_columns(spec.space))


def _write_shared_view(client: Any, experiment_id: str, run_id: str, spec: SweepSpec) -> str | None:
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


def _report_unlogged(unlogged: list[str], spec: SweepSpec, run_path: str) -> None:
    """MLflow stayed away: say what is missing there and where the complete results are."""
    import sys

    listing = Path(run_path) / "mlflow_unlogged.json" if "://" not in run_path else Path("mlflow_unlogged.json")
    listing.write_text(redact_text(json.dumps(unlogged, indent=1)))
    print(f"medtune: {len(unlogged)} MLflow operations could not be logged to {redact_uri(spec.mlflow.tracking_uri)} "
          f"(listed in {listing}); every trial's metrics and checkpoints are in the Ray results at {run_path}.",
          file=sys.stderr, flush=True)

def _log_space_document(client: Any, run_id: str, spec: SweepSpec) -> None:
    """The validated space (after --set) on the parent run: what 'medtune best' rebuilds the sweep from."""
    doc = redact_document(spec.raw)
    with tempfile.TemporaryDirectory() as tmp:
        path = dump_yaml(doc, Path(tmp) / "space.yaml")
        client.log_artifact(run_id, str(path))

def _upload(local: Path, uri: str) -> None:
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    with fs.open_output_stream(path) as f:
        f.write(local.read_bytes())

def _parent_params(spec: SweepSpec) -> list:
    from mlflow.entities import Param

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
    return [Param(k, str(v)) for k, v in values.items()]

def _write_rungs(tuner: Any, spec: SweepSpec, run_path: str) -> Path | None:
    """``asha_rungs.json`` in the run folder: every milestone's trials, values and cut-off (ASHA sweeps only)."""
    from medtune.search.run.asha_rungs import AshaRungs, rungs_document

    rungs = _callback_of(tuner, AshaRungs)
    if rungs is None:
        return None
    doc = rungs_document(rungs.scheduler, spec.metric.name, TIME_ATTR[spec.search.scheduler.unit])
    local = Path(tempfile.mkdtemp() if "://" in run_path else run_path) / "asha_rungs.json"
    local.write_text(json.dumps(doc, indent=1))
    if "://" in run_path:
        _upload(local, f"{run_path}/asha_rungs.json")
    return local

def _finish_parent_run(client: Any, run_id: str, entries: list[LeaderboardEntry], spec: SweepSpec,
                       best_path: Path | None, results: Any = None, rungs_path: Path | None = None,
                       study: Any = None) -> None:
    from mlflow.entities import Metric, RunTag

    from medtune.search.results.plots import sweep_plots
    from medtune.search.tracking.run_notes import NOTE_TAG, sweep_note

    logged = ["leaderboard.csv"]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_leaderboard_csv(entries, spec, Path(tmp) / "leaderboard.csv")
        client.log_artifact(run_id, str(csv_path))
        for path in (best_path, rungs_path):
            if path is not None and path.exists():
                client.log_artifact(run_id, str(path))
                logged.append(path.name)
        if results is not None:
            plots = Path(tmp) / "plots"
            plots.mkdir()
            drawn = sweep_plots(results, study, spec, plots)
            if drawn:
                client.log_artifacts(run_id, str(plots), artifact_path="plots")
                logged += [f"plots/{p.name}" for p in drawn]
    if results is not None:
        _log_best_model(client, run_id, entries, spec, results)
    ranked = [e for e in entries if e.best_epoch > 0]
    now = int(time.time() * 1000)
    metrics = [Metric("trials", float(len(entries)), now, 0),
               Metric("total_epochs", float(sum(e.epochs_run for e in entries)), now, 0)]
    tags = []
    if ranked:
        metrics.append(Metric(f"best_{spec.metric.name}", ranked[0].best_value, now, 0))
        tags.append(RunTag("medtune.best_trial", ranked[0].trial_id))
    run = client.get_run(run_id)
    runs_route = _write_shared_view(client, run.info.experiment_id, run_id, spec)
    note = sweep_note(client, run.info.experiment_id, run_id, run.data.tags.get("medtune.run_name", run.info.run_name),
                      spec, entries, logged, runs_route)
    tags.append(RunTag(NOTE_TAG, note))
    client.log_batch(run_id, metrics=metrics, tags=tags)
    client.set_terminated(run_id, status="FINISHED")

