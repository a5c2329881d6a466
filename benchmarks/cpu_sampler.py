"""Who else uses the CPUs while a trial trains? A /proc sampler for the overhead benchmark.

On a 2-core machine a trial's torch threads share the cores with the Tune driver (its event loop,
the MLflow thread), the raylet, the GCS and Ray's helper processes. Their CPU use while the trial
trains is the part of medtune's overhead that no per-epoch timer inside the trial can see. This
sampler reads every process's user + system ticks from ``/proc/<pid>/stat`` twice a second and
reports, for the window in which a trial process was alive, how many cores the others used on
average (Linux only; elsewhere it reports nothing).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
TRIAL_MARKERS = ("ImplicitFunc", "tune_trainable")


def _comm_and_ticks(stat: str) -> tuple[str, int]:
    """(comm, user + system ticks) from a /proc stat line."""
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return stat[stat.index("(") + 1: stat.rindex(")")], int(fields[11]) + int(fields[12])


def processes() -> Iterator[tuple[Path, str]]:
    """(``/proc/<pid>``, command line) of every process that is still there when read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        yield entry, cmd


def _snapshot() -> dict[int | tuple[int, int], tuple[str, int]]:
    """pid -> (command line, ticks) for every readable process, and (pid, tid) -> (thread name,
    ticks) for the threads of trial processes: torch's OpenMP threads and Ray's own (gRPC, io,
    metrics) threads live in the same process, and only their names tell them apart."""
    out: dict[int | tuple[int, int], tuple[str, int]] = {}
    for entry, cmd in processes():
        try:
            comm, ticks = _comm_and_ticks((entry / "stat").read_text())
        except OSError:
            continue
        pid = int(entry.name)
        out[pid] = (cmd or comm, ticks)
        if any(m in cmd for m in TRIAL_MARKERS):
            for task in (entry / "task").iterdir():
                try:
                    out[(pid, int(task.name))] = _comm_and_ticks((task / "stat").read_text())
                except OSError:
                    continue
    return out


def _short_name(cmd: str) -> str:
    """'gcs_server', 'raylet', 'ray::IDLE', or a Python process's script name."""
    parts = cmd.split()
    if not parts:
        return ""
    name = parts[0].rsplit("/", 1)[-1]
    if name.startswith("python") and len(parts) > 1:
        script = next((p for p in parts[1:] if p.endswith(".py") or p == "-m"), parts[1])
        return script.rsplit("/", 1)[-1]
    return name


class CpuSampler:
    """Sample in a thread; ``result()`` gives the trial window and the other processes' cores."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._samples: list[tuple[float, dict[int, tuple[str, int]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> "CpuSampler":
        if Path("/proc/self/stat").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._samples.append((time.perf_counter(), _snapshot()))
            self._stop.wait(self.interval)

    def result(self) -> dict[str, object]:
        """Cores used by the trial and by everything else, averaged over the trial's lifetime."""
        in_window = [(t, snap) for t, snap in self._samples
                     if any(m in cmd for cmd, _ in snap.values() for m in TRIAL_MARKERS)]
        if len(in_window) < 2:
            return {}
        (t0, first), (t1, _) = in_window[0], in_window[-1]
        seconds = t1 - t0
        # Last value seen in the window for each process and thread: a thread that ends before the
        # window does (the trial's training thread, when the trial finishes) keeps its ticks.
        last: dict[int | tuple[int, int], tuple[str, int]] = {}
        for _, snap in in_window:
            last.update(snap)
        per_process: dict[str, float] = {}
        trial = other = 0.0
        trial_threads: dict[str, float] = {}
        for pid, (cmd, ticks) in last.items():
            used = (ticks - first[pid][1] if pid in first else ticks) / TICKS
            if used <= 0:
                continue
            if isinstance(pid, tuple):
                trial_threads[cmd] = trial_threads.get(cmd, 0.0) + used
                continue
            if any(m in cmd for m in TRIAL_MARKERS):
                trial += used
            else:
                other += used
                name = _short_name(cmd) or str(pid)
                per_process[name] = per_process.get(name, 0.0) + used
        top = sorted(per_process.items(), key=lambda kv: -kv[1])[:8]
        return {"window_seconds": seconds, "trial_cores": trial / seconds, "other_cores": other / seconds,
                "other_by_process": {k: round(v / seconds, 4) for k, v in top},
                "trial_by_thread_name": {k: round(v / seconds, 4)
                                         for k, v in sorted(trial_threads.items(), key=lambda kv: -kv[1])[:12]}}
