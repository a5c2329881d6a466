"""An ordered work queue on one background thread that waits out an unreachable tracking server.

The owner puts operations (MLflow calls, here) and returns at once: whoever produces the work
never waits for a round trip to the store. Operations run one at a time, in the order they were
put, on one daemon thread started by the first ``put``. When an operation raises, the server is
taken to be away: the queue warns once, retries that same operation at most every
``RETRY_INTERVAL_S`` (nothing queued behind it overtakes it, so a run is never written to before
it exists), and warns once more when it succeeds again. ``finish`` gives the thread a last try
and returns the descriptions of whatever is still queued, for the owner to report.

It knows nothing of Tune or of what the operations do. A pickled queue (Tune saves its callbacks
with the experiment) keeps its counters and leaves its thread, lock and queued work behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any, Callable

log = logging.getLogger(__name__)

#: While the tracking server is unreachable, queued operations are retried at most this often.
RETRY_INTERVAL_S = int(os.environ.get("MEDTUNE_MLFLOW_RETRY_S", "15"))

#: Logged by urllib3 for every failed request; silenced while the queue has already warned once.
_URLLIB3 = "urllib3.connectionpool"


class RetryingQueue:
    """Runs queued operations in order on one thread, retrying the head while it fails.

    ``target`` names the server in the warnings (it must hold no credentials); ``logger`` is where
    they go. ``seconds_busy`` is the time the thread has spent inside operations, failed ones too.
    """

    def __init__(self, target: str, logger: logging.Logger | None = None, thread_name: str = "medtune-mlflow") -> None:
        self.target = target
        self.seconds_busy = 0.0
        self._log = logger or log
        self._thread_name = thread_name
        self._pending: deque[tuple[str, Callable[[], None]]] = deque()
        self._offline = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Condition()

    def put(self, description: str, operation: Callable[[], None]) -> None:
        """Queue ``operation`` (``description`` is what ``finish`` reports if it never succeeds)."""
        with self._wake:
            self._pending.append((description, operation))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._thread_name, daemon=True)
                self._thread.start()
            self._wake.notify()

    def finish(self) -> list[str]:
        """Wait for the thread to drain the queue (one more try if the server is away); the
        descriptions of what could not be done. The queue can be used again afterwards."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._thread, self._stopping = None, False
        return [description for description, _ in self._pending]

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if not self._pending:
                    return
                description, operation = self._pending[0]
            started = time.perf_counter()
            try:
                operation()
            except Exception as exc:
                self.seconds_busy += time.perf_counter() - started
                if not self._offline:
                    self._went_away(exc)
                with self._wake:
                    if self._stopping:  # finish() asked, and this was the last try
                        return
                    self._wake.wait(RETRY_INTERVAL_S)  # finish() wakes it for one more try
                continue
            self.seconds_busy += time.perf_counter() - started
            with self._wake:
                self._pending.popleft()
                left = len(self._pending)
            if self._offline:
                self._came_back(left + 1)

    def _went_away(self, exc: Exception) -> None:
        self._offline = True
        logging.getLogger(_URLLIB3).setLevel(logging.ERROR)  # one warning from medtune, not one per request
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        self._log.warning("MLflow tracking server %s is unreachable (%s: %s). Trials keep training; "
                          "medtune queues what it cannot log and retries every %d s.",
                          self.target, type(exc).__name__, message, RETRY_INTERVAL_S)

    def _came_back(self, done: int) -> None:
        self._offline = False
        logging.getLogger(_URLLIB3).setLevel(logging.NOTSET)
        self._log.warning("MLflow tracking server %s is back; logging the %d operations queued meanwhile.",
                          self.target, done)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_pending=deque(), _stopping=False, _thread=None, _wake=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._wake = threading.Condition()
