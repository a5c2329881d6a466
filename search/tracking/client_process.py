"""An MlflowClient that runs in a child process, for tracking URIs whose store runs in the caller.

With a database or file store (``sqlite:///...``, ``postgresql://...``, a local path) every MLflow
call runs MLflow's store in the calling process: for a sweep's child runs that is MLflow's
SQLAlchemy code on the driver, tens of milliseconds of Python per trial (each ``log_batch`` loads
the run and commits params, metrics and tags separately), holding the GIL that Tune's event loop
needs (``benchmarks/bookkeeping.py`` measures it). Here that work runs in a child process, on
another core; the logging thread only waits on a pipe. With a tracking server (``http(s)://``)
the store work is the server's already, and the plain client is used.

The protocol is private to the two processes: length-prefixed pickles of ``(method, args,
kwargs)`` and ``(ok, result or exception)`` over the child's stdin and stdout. The tracking URI,
which may hold credentials, travels over the pipe, never on a command line.
"""

from __future__ import annotations

import functools
import os
import pickle
import struct
import subprocess
import sys
import threading
from typing import IO, Any
from urllib.parse import urlsplit

#: Tracking-URI schemes whose store is remote: the client only makes requests.
REMOTE_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")
_LENGTH = struct.Struct("!Q")
#: The request the child answers with None without touching MLflow: it is ready.
PING = "__ping__"


def store_runs_in_process(tracking_uri: str) -> bool:
    """True when MLflow would run the tracking store itself inside the calling process."""
    scheme = urlsplit(tracking_uri).scheme.lower() or tracking_uri.lower()  # "databricks" has no "://"
    return scheme not in REMOTE_SCHEMES


def _write(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def _read(stream: IO[bytes]) -> bytes | None:
    """One message, or None at end of stream."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


class MlflowClientProcess:
    """``MlflowClient``'s methods, called in a child process; exceptions are re-raised here.

    The child starts on the first call and after it dies (the next call starts a new one; the
    failed call raises ``ConnectionError``, which the caller's retry logic handles like an
    unreachable server). Calls are serialised: one request at a time over one pipe.
    """

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        # The same interpreter, so the same installed medtune; the URI goes over the pipe.
        child = subprocess.Popen([sys.executable, "-m", "medtune.search.tracking.client_process"],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
        _write(child.stdin, self.tracking_uri.encode())
        return child

    def start(self) -> None:
        """Start the child, if it is not running, and wait until it has imported MLflow.

        Called before trials train (the MLflow callback's ``setup``): importing MLflow takes about
        3 s of CPU, which would otherwise be taken from the first trial's epochs on a small machine.
        """
        self.call(PING)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._child is None or self._child.poll() is not None:
                self._child = self._start()
            try:
                _write(self._child.stdin, pickle.dumps((method, args, kwargs)))
                reply = _read(self._child.stdout)
            except OSError:
                reply = None
            if reply is None:
                code = self._stop()
                raise ConnectionError(f"medtune's MLflow process exited (code {code}) during {method}")
        ok, value = pickle.loads(reply)
        if ok:
            return value
        raise value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self.call, name)

    def _stop(self) -> int | None:
        child, self._child = self._child, None
        if child is None:
            return None
        try:
            child.stdin.close()  # end of requests: the child returns
            return child.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            return child.wait()
        finally:
            child.stdout.close()

    def close(self) -> None:
        """Stop the child once its last request is answered (a later call starts a new one)."""
        with self._lock:
            self._stop()


def serve() -> None:
    """The child: answer requests from stdin on stdout until stdin closes."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed to stdout (by MLflow, alembic, C code) goes to stderr instead
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    uri = _read(requests)
    if uri is None:
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient  # plain: ``client.mlflow_client``'s HTTP settings are for servers

    client = MlflowClient(tracking_uri=uri.decode())
    while (request := _read(requests)) is not None:
        method, args, kwargs = pickle.loads(request)
        try:
            result = None if method == PING else getattr(client, method)(*args, **kwargs)
            reply = pickle.dumps((True, result))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            try:
                reply = pickle.dumps((False, exc))
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                reply = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
        _write(replies, reply)


if __name__ == "__main__":
    serve()
