"""Where the sweep's Optuna study lives, so that ``optuna-dashboard`` and the plots see what TPE saw.

Ray Tune's ``OptunaSearch`` keeps its study in memory unless given a storage. medtune gives it one:
by default Optuna's ``JournalStorage`` in the run folder (``<storage>/<run>/optuna.journal``), a
plain append-only file that needs no server and survives the driver (``medtune resume`` reopens
it), or whatever ``search.sampler.storage`` names (an RDB URL such as ``sqlite:////abs/optuna.db``
or ``postgresql://db/optuna``, or another journal file). The study is named after the run.
``optuna-dashboard <run>/optuna.journal`` then shows the live sweep: COMPLETE trials with their
best value, PRUNED ones (stopped by ASHA) with their per-epoch values.

A run folder on S3 cannot hold an append-only journal, so with ``s3://`` storage and no
``search.sampler.storage`` the study stays in memory (Tune still saves and restores it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.search.locations import is_remote
from medtune.search.spec.sections import IN_MEMORY

if TYPE_CHECKING:
    import optuna

JOURNAL_NAME = "optuna.journal"
def study_location(setting: str | None, run_path: str) -> str | None:
    """The study's storage as a URL or an absolute journal path; None when it stays in memory."""
    if setting == IN_MEMORY:
        return None
    if setting is None:
        return None if is_remote(run_path) else str(Path(run_path) / JOURNAL_NAME)
    if is_remote(setting):
        if setting.startswith("sqlite:///") and not setting.startswith("sqlite:////"):
            return "sqlite:///" + str(Path(setting[len("sqlite:///"):]).expanduser().resolve())
        return setting
    return str(Path(setting).expanduser().resolve())


def open_storage(location: str) -> "optuna.storages.BaseStorage":
    """Optuna's storage for a location from ``study_location`` (the journal's folder is created)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if is_remote(location):
        return optuna.storages.RDBStorage(location)
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(location))


def dashboard_command(location: str | None) -> str | None:
    """What a user runs to watch the study (``pip install optuna-dashboard``)."""
    return None if location is None else f"optuna-dashboard {location}"


def searcher_study(search_alg: Any) -> "optuna.Study | None":
    """The study a (possibly ConcurrencyLimiter-wrapped) MedtuneOptunaSearch told its trials to."""
    searcher = getattr(search_alg, "searcher", search_alg)
    return getattr(searcher, "study", None)
