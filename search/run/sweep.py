"""The sweep driver: ``run_sweep`` and ``resume_sweep``, each a list of steps.

Order matters. Everything that can fail on bad input (the spec, the data, the storage, a GPU
request on a cluster without GPUs) fails in ``preflight.prepare_sweep`` before a single trial is
scheduled, and the data is decoded into the node's cache there, so trials on the driver's node find
it ready. The MLflow parent run (``tracking/sweep_run.py``) is opened next; whatever ends the sweep
early leaves it FAILED with the reason. The run record (``record.py``) is written before ``fit``,
so a sweep whose driver dies can be resumed. After ``fit`` the trials are ranked, the best
configuration is written, and the parent run gets the results; MLflow being away then costs
the MLflow copy of the results, never the results (they are in the run folder).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from medtune.search.locations import is_remote
from medtune.search.results.leaderboard import (
    LeaderboardEntry,
    best_config_document,
    format_leaderboard,
    leaderboard,
    write_leaderboard_csv,
)
from medtune.search.results.plots import sweep_plots
from medtune.search.run.asha_rungs import AshaRungs, write_rungs
from medtune.search.run.fail_fast import FailFast, fail_fast_for
from medtune.search.run.outcome import SweepOutcome
from medtune.search.run.preflight import check_output_path, prepare_sweep
from medtune.search.run.record import read_sweep_record, sweep_record, write_sweep_record
from medtune.search.run.storage import run_path_of, upload
from medtune.search.run.study import dashboard_command, searcher_study, study_location
from medtune.search.run.tuner import SweepTuner, restored_tuner, sweep_tuner
from medtune.search.spec.loader import dump_yaml
from medtune.search.spec.sweep_spec import (
    BEST_CONFIG_FILE,
    SpecError,
    SweepSpec,
    epoch_plan,
    folder_name_problem,
    scheduler_metric,
    validate_spec,
)
from medtune.search.tracking.callback import MlflowTrialCallback
from medtune.search.tracking.sweep_run import SweepRun, failed_on_exit, report_unlogged, shared_view
from medtune.trainables.budget import TIME_ATTR
from medtune.trainables.gpu_metrics import GPU_BUSY, sweep_sampler

__all__ = ["SweepOutcome", "default_run_name", "read_sweep_record", "resume_sweep", "run_path_of", "run_sweep",
           "shared_view"]

#: How many of the best configurations ``best_config.yaml`` lists for ``medtune final --ensemble K``.
TOP_CONFIGS = 5


def default_run_name(spec: SweepSpec) -> str:
    return f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_sweep(spec: SweepSpec, *, run_name: str | None = None,
              best_config_out: str | Path | None = None) -> SweepOutcome:
    """Run the whole sweep and return its ranked results."""
    if run_name is not None and (problem := folder_name_problem(run_name)):
        raise SpecError(spec.source, [("--name", problem)])
    if best_config_out is not None:
        check_output_path(best_config_out, "-o", spec.source)
    run_name = run_name or default_run_name(spec)
    spec, fingerprint = prepare_sweep(spec)
    fail_fast = fail_fast_for(spec.search.num_samples, spec.search.max_concurrent)
    parent = SweepRun.start(spec, run_name, fingerprint) if spec.mlflow.enabled else None
    with failed_on_exit(parent):
        tracker = None
        if parent is not None:
            parent.log_space(spec)
            tracker = MlflowTrialCallback(parent.tracking_uri, parent.experiment_id, parent.run_id,
                                          spec.metric.name, spec.metric.mode, epoch_plan(spec))
        tuned = sweep_tuner(spec, run_name, callbacks=[fail_fast, *([tracker] if tracker else [])])
        run_path = run_path_of(spec, run_name)
        if command := dashboard_command(study_location(spec.search.sampler.storage, run_path)):
            print(f"Optuna study {run_name!r}, live: {command}", flush=True)
        write_sweep_record(run_path, sweep_record(spec, run_name, parent))
        return _fit_and_finish(tuned, spec, run_name, run_path, parent, best_config_out)


def resume_sweep(run_path: str, *, best_config_out: str | Path | None = None) -> SweepOutcome:
    """Continue a sweep whose driver died or whose job was stopped (``Tuner.restore``).

    Finished trials are not rerun; unfinished ones restart from their last checkpoint; the
    searcher (Optuna's study) and the MLflow callback (trial -> child run) come back from the
    experiment state Tune saved, so TPE keeps what it learned and no child run is duplicated.
    """
    record = read_sweep_record(run_path)
    if best_config_out is not None:
        check_output_path(best_config_out, "-o", run_path)
    spec = validate_spec(record["spec"], source=record.get("source", run_path))
    run_path = run_path if is_remote(run_path) else str(Path(run_path).expanduser().resolve())
    spec, _ = prepare_sweep(spec)
    parent = None
    if spec.mlflow.enabled and record.get("parent_run_id"):
        parent = SweepRun.reopen(record["tracking_uri"], record["parent_run_id"])
    with failed_on_exit(parent):
        tuned = restored_tuner(spec, run_path)
        tracker = tuned.callback(MlflowTrialCallback)
        if tracker is not None and parent is not None:
            tracker.tracking_uri = parent.tracking_uri  # the saved state holds it without credentials
        return _fit_and_finish(tuned, spec, record["run_name"], run_path, parent, best_config_out)


def _fit_and_finish(tuned: SweepTuner, spec: SweepSpec, run_name: str, run_path: str, parent: SweepRun | None,
                    best_config_out: str | Path | None) -> SweepOutcome:
    """``fit``, then the leaderboard, ``best_config.yaml``, ``asha_rungs.json`` and the parent run's end."""
    tracker, fail_fast = tuned.callback(MlflowTrialCallback), tuned.callback(FailFast)
    gpu_sampler = sweep_sampler()  # the GPUs of the driver's node, over fit; None on CPU machines (docs/gpu.md)
    if gpu_sampler is not None:
        gpu_sampler.start()
    fit_started = time.perf_counter()
    unlogged: list[str] = []
    try:
        results = tuned.tuner.fit()
    finally:
        gpu_busy = gpu_sampler.stop() if gpu_sampler is not None else None
        # The trials' MLflow calls run on the callback's thread: let it finish, even when fit failed
        # (the caller's failed_on_exit then marks the parent run FAILED).
        unlogged = tracker.finish() if tracker is not None else []
    fit_seconds = time.perf_counter() - fit_started
    if gpu_busy is not None:
        gpus = len(gpu_sampler.handles)
        print(f"GPU busy {gpu_busy:.0f}% of Tuner.fit ({fit_seconds:.0f} s, {gpus} GPU{'s' * (gpus != 1)} on the "
              "driver's node)", flush=True)

    entries = leaderboard(results, spec)
    print(format_leaderboard(entries, spec), flush=True)
    if fail_fast is not None and fail_fast.reason:
        print(f"medtune: {fail_fast.reason}", file=sys.stderr, flush=True)
    best_path = _write_best_config(spec, entries, run_name, run_path, parent, best_config_out)
    rungs = tuned.callback(AshaRungs)
    rungs_path = (write_rungs(rungs, scheduler_metric(spec), TIME_ATTR[spec.search.scheduler.unit], run_path)
                  if rungs else None)
    view_route = None
    if parent is not None:
        if gpu_busy is not None:
            parent.totals[GPU_BUSY] = gpu_busy
        try:
            view_route = _finish_parent_run(parent, spec, entries, [best_path, rungs_path], results,
                                            searcher_study(tuned.search_alg))
        except Exception as exc:
            unlogged.append(f"leaderboard, best config and end of the sweep's parent run ({type(exc).__name__})")
    if unlogged:
        report_unlogged(unlogged, spec.mlflow.tracking_uri, run_path)
    return SweepOutcome(run_name, run_path, entries, best_path, parent.run_id if parent else None, results,
                        tracker.seconds_logging if tracker is not None else 0.0, fit_seconds, spec,
                        parent.experiment_id if parent else None, view_route, gpu_busy_pct=gpu_busy)


def _write_best_config(spec: SweepSpec, entries: list[LeaderboardEntry], run_name: str, run_path: str,
                       parent: SweepRun | None, out: str | Path | None) -> Path | None:
    """``best_config.yaml`` (at ``-o``, else in the run folder), or None when no trial finished an epoch."""
    ranked = [e for e in entries if e.best_epoch > 0]
    if not ranked:
        return None
    doc = best_config_document(spec, ranked[0], run_name, top=ranked[:TOP_CONFIGS],
                               parent_run_id=parent.run_id if parent else None)
    path = Path(out) if out else Path(BEST_CONFIG_FILE) if is_remote(run_path) else Path(run_path) / BEST_CONFIG_FILE
    dump_yaml(doc, path)
    if is_remote(run_path):
        upload(path, run_path, BEST_CONFIG_FILE)
    print(f"Best configuration ({spec.metric.name} = {ranked[0].best_value:.4f}, trial {ranked[0].trial_id}, "
          f"epoch {ranked[0].best_epoch}) written to {path}", flush=True)
    return path


def _finish_parent_run(parent: SweepRun, spec: SweepSpec, entries: list[LeaderboardEntry],
                       written: list[Path | None], results: Any, study: Any) -> str | None:
    """The leaderboard and the plots drawn into a temporary folder, and the parent run finished with
    them and the files already ``written``; returns the route of the shared view it stored."""
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_leaderboard_csv(entries, spec, Path(tmp) / "leaderboard.csv")
        plots = Path(tmp) / "plots"
        plots.mkdir()
        files = [csv_path, *(p for p in written if p is not None and p.exists())]
        return parent.finish(spec, entries, files, lambda: sweep_plots(results, study, spec, plots), results)

