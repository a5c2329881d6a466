"""Progress of long work: decoding an image folder, staging from S3, final training, the bootstrap.

One mechanism, tqdm (already installed with Optuna), in two shapes. On a terminal it is tqdm's
bar, with its time left. Anywhere else (a Ray job's log, CI, a file) a bar redrawn with carriage
returns would pile up into one unreadable line, so each refresh becomes a plain line of its own,
at most one every ``LOG_INTERVAL_S``.

``MEDTUNE_PROGRESS=0`` turns it all off (``medtune -q`` sets it). It is an environment variable so
that it reaches Ray's worker processes and ``ray job submit`` drivers too.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable, TextIO

from tqdm import tqdm

from medtune.trainables.objective import EPOCH

PROGRESS_ENV = "MEDTUNE_PROGRESS"
#: Away from a terminal, the least time between two progress lines.
LOG_INTERVAL_S = 10.0


def progress_enabled() -> bool:
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _LinePerRefresh:
    """A file for tqdm that writes each redraw as a line (tqdm writes ``\\r<bar>``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line and line != self._last:  # tqdm redraws the last state when it closes
            self.stream.write(line + "\n")
            self._last = line

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def progress(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str, unit: str = "it",
             delay: float = 2.0, stream: TextIO | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on ``stream`` (stderr) shaped for where it goes; shown only for work that lasts
    longer than ``delay`` seconds, so quick steps (and tests) print nothing."""
    stream = stream or sys.stderr
    terminal = _is_terminal(stream)
    options = {"mininterval": 0.1 if terminal else LOG_INTERVAL_S, **kwargs}
    return tqdm(iterable, total=total, desc=desc, unit=unit, delay=delay, disable=not progress_enabled(),
                file=stream if terminal else _LinePerRefresh(stream), dynamic_ncols=terminal,
                **options)


class EpochProgress:
    """Wraps a ``Reporter`` (``medtune.trainables.reporters``) and shows each reported epoch: epoch of
    total, train loss, the watched validation metric, and tqdm's estimate of the time left.

    Every epoch is shown away from a terminal too (an epoch is worth a line).
    """

    def __init__(self, reporter: Any, desc: str, metric: str, stream: TextIO | None = None) -> None:
        self.reporter, self.desc, self.metric, self.stream = reporter, desc, metric, stream
        self._bar: tqdm | None = None

    def report(self, metrics: dict[str, Any], checkpoint_dir: Any) -> None:
        self.reporter.report(metrics, checkpoint_dir)
        shown = {"train_loss": metrics.get("train_loss"), self.metric: metrics.get(self.metric)}
        postfix = {k: f"{v:.4f}" for k, v in shown.items() if isinstance(v, (int, float))}
        if self._bar is None:  # from the first epoch on: its rate would include start-up
            self._bar = progress(total=int(metrics.get("epochs_total") or 0) or None, desc=self.desc, unit="epoch",
                                 delay=0.0, stream=self.stream, mininterval=0.0, miniters=1,
                                 # away from a terminal every epoch has its line already
                                 leave=_is_terminal(self.stream or sys.stderr),
                                 initial=int(metrics[EPOCH]), postfix=postfix)
        else:
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(int(metrics[EPOCH]) - self._bar.n)
        if self._bar.total is not None and self._bar.n >= self._bar.total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __getattr__(self, name: str) -> Any:
        """Everything else of the ``Reporter`` protocol (``restored_checkpoint``, ``cpus``,
        ``checkpoint_interval_s``) and the wrapped reporter's own fields (history, best, ...)."""
        return getattr(self.reporter, name)
