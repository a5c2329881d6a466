"""Where a training run sends its per-epoch metrics and checkpoints.

The same training loop runs as a Ray Tune trial (``TuneReporter``: ``tune.report`` with a
``tune.Checkpoint``, resumed through ``tune.get_checkpoint``) and without Ray (``LocalReporter``:
checkpoints in a folder, used by the final training run and by tests). The loop only sees the
``Reporter`` protocol.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol

from medtune.trainables.objective import Objective

CHECKPOINT_FILE = "checkpoint.pt"


class Reporter(Protocol):
    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        """Record one epoch. ``checkpoint_dir`` is a temporary folder the reporter must copy or move."""

    @contextmanager
    def restored_checkpoint(self) -> Iterator[Path | None]:
        """The folder of the checkpoint to resume from (or ``None``), valid inside the block."""

    def cpus(self) -> int | None:
        """CPU threads this run may use, when the scheduler knows."""

    def checkpoint_interval_s(self) -> float:
        """The least time between two checkpoints of this run (its first and last are always kept)."""


class TuneReporter:
    """Reports to the Ray Tune session this trial runs in."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    @contextmanager
    def restored_checkpoint(self) -> Iterator[Path | None]:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as folder:
            yield Path(folder)

    def cpus(self) -> int | None:
        from ray import tune

        try:
            resources = tune.get_context().get_trial_resources().required_resources
        except Exception:  # not in a session with known resources
            return None
        cpu = resources.get("CPU")
        return max(1, int(math.floor(cpu))) if cpu else None

    def checkpoint_interval_s(self) -> float:
        """Tune snapshots its experiment state whenever a trial has checkpointed ``num_to_keep`` times
        since the last snapshot, and calls snapshots less than this far apart excessive (it warns
        several times a second when epochs are short). A trial that checkpoints at most this often
        can never force two snapshots that close; a restarted trial loses at most this much work."""
        import os

        return float(os.environ.get("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "5"))


class LocalReporter:
    """Keeps the history in memory and the last and best checkpoints in ``out_dir``.

    ``metric``/``mode`` pick the best epoch, as Ray Tune's ``CheckpointConfig`` would.
    """

    def __init__(self, out_dir: str | Path | None = None, metric: str = "val_loss", mode: str = "min",
                 resume: bool = False, num_threads: int | None = None) -> None:
        self.out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="medtune-run-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metric, self.mode = metric, mode
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._resume = resume
        self._num_threads = num_threads

    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / "last"

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / "best"

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        self.history.append(dict(metrics))
        with open(self.out_dir / "history.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        is_best = self._is_better(metrics)
        if is_best:
            self.best = dict(metrics)
        if checkpoint_dir is None:
            return
        if is_best:
            _replace_dir(checkpoint_dir, self.best_checkpoint, copy=True)
        _replace_dir(checkpoint_dir, self.last_checkpoint, copy=False)

    def _is_better(self, metrics: dict[str, Any]) -> bool:
        """The first epoch is the best so far; later ones must beat it (a missing or NaN value never does,
        and any finite value beats a NaN best)."""
        if self.best is None:
            return True
        return Objective(self.metric, self.mode).better(metrics.get(self.metric), self.best.get(self.metric))

    @contextmanager
    def restored_checkpoint(self) -> Iterator[Path | None]:
        ok = self._resume and (self.last_checkpoint / CHECKPOINT_FILE).exists()
        yield self.last_checkpoint if ok else None

    def cpus(self) -> int | None:
        return self._num_threads

    def checkpoint_interval_s(self) -> float:
        return 0.0  # a local checkpoint is one file copy: keep every due one


def _replace_dir(src: Path, dst: Path, copy: bool) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if copy:
        shutil.copytree(src, tmp)
    else:
        shutil.move(str(src), str(tmp))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
