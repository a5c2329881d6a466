"""The run record, ``<run folder>/medtune_sweep.json``: what ``medtune resume`` needs besides Tune's state.

Ray Tune saves its own experiment state (trials, searcher, callbacks) in the run folder; it does
not know the validated space medtune ran (after ``--set``), nor the MLflow parent run the trials
are nested under. The sweep writes both here when it starts, before any trial, and ``resume``
reads them back. The record is written without the user info of any URI in it (a tracking
server's password stays in the environment).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from medtune.search.credentials import redact_document
from medtune.search.run.storage import read_file, write_file
from medtune.search.spec.sweep_spec import SpecError, SweepSpec

if TYPE_CHECKING:
    from medtune.search.tracking.sweep_run import SweepRun

SWEEP_RECORD = "medtune_sweep.json"
#: The keys a record must have for a sweep to be resumed from it.
REQUIRED_KEYS = ("spec", "run_name")


def sweep_record(spec: SweepSpec, run_name: str, parent: SweepRun | None) -> dict[str, Any]:
    """The record of a sweep: its validated space document and source, its run name and its MLflow
    parent run (all None with MLflow off)."""
    return {"spec": spec.raw, "source": spec.source, "run_name": run_name,
            "parent_run_id": parent.run_id if parent else None,
            "experiment_id": parent.experiment_id if parent else None,
            "tracking_uri": parent.tracking_uri if parent else None}


def write_sweep_record(run_path: str, record: dict[str, Any]) -> None:
    """``record`` as the run folder's ``medtune_sweep.json`` (the folder is created)."""
    write_file(run_path, SWEEP_RECORD, json.dumps(redact_document(record), indent=1, default=str).encode())


def read_sweep_record(run_path: str) -> dict[str, Any]:
    """The record of a sweep that ``medtune resume`` continues; a clear error when it is not one."""
    try:
        record = json.loads(read_file(run_path, SWEEP_RECORD).decode())
    except (FileNotFoundError, OSError) as exc:
        raise SpecError(run_path, [("<run>", f"not a medtune sweep folder: {SWEEP_RECORD} not found there "
                                             "(expected <storage>/<run name>/, as printed by 'medtune sweep'); "
                                             f"{exc}")]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(run_path, [(SWEEP_RECORD, f"not readable JSON ({exc}); the file is damaged, so this sweep "
                                                  "cannot be resumed from it")]) from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        raise SpecError(run_path, [(f"{SWEEP_RECORD}: {key}", "missing; expected the record 'medtune sweep' writes "
                                                             "(the validated space and the run name)")
                                   for key in missing])
    return record
