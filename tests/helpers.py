"""Helpers shared by tests in several folders: child processes (resume, job submission), servers, and a
tiny Kermany-layout image folder."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FINISHED_OUTCOMES = ("completed", "stopped_early")
#: Overrides that give spaces/demo.yaml a 2-epoch budget selected on val: tests about jobs, servers
#: and outages need short trials, not the demo's image budget or cross-validation.
EPOCH_BUDGET_2 = ("search.scheduler.unit=epochs", "search.scheduler.max_t=2", "search.scheduler.grace_period=1",
                  "search.cv=null")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The test's environment for a child process: this interpreter's scripts first, the repo importable."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(REPO)
    env.update(HF_HUB_OFFLINE="1", MLFLOW_DISABLE_TELEMETRY="true", RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_runs(client: Any, experiment: str) -> list[Any]:
    """The trial runs of an experiment (runs with a parent)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def finished_trial_ids(client: Any, experiment: str) -> set[str]:
    return {r.data.tags["medtune.trial_id"] for r in child_runs(client, experiment)
            if r.data.tags.get("medtune.outcome") in FINISHED_OUTCOMES}


def kill_driver_midway(command: list[str], cwd: Path, env: dict[str, str], client: Any, experiment: str,
                       log_path: Path, timeout: float = 240) -> tuple[set[str], set[str]]:
    """Start a sweep driver, SIGKILL its whole session once two trials are done and one is mid-way.

    Returns (trials finished before the kill, trials interrupted after at least one epoch). Ray
    started in-process shares the driver's fate, so nothing of the old sweep survives the kill.
    """
    import signal
    import subprocess
    import time

    with open(log_path, "w") as log:
        driver = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        finished: set[str] = set()
        interrupted: set[str] = set()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and driver.poll() is None:
                time.sleep(0.5)
                try:
                    runs = child_runs(client, experiment)
                except Exception:  # the store is being created by the driver
                    continue
                finished = {r.data.tags["medtune.trial_id"] for r in runs
                            if r.data.tags.get("medtune.outcome") in FINISHED_OUTCOMES}
                interrupted = {r.data.tags["medtune.trial_id"] for r in runs
                               if r.data.tags["medtune.trial_id"] not in finished
                               and client.get_metric_history(r.info.run_id, "val_loss")}
                if len(finished) >= 2 and interrupted:
                    break
            alive = driver.poll() is None
            time.sleep(1.5)  # what was observed is in Tune's next state snapshot (every second)
        finally:
            with contextlib.suppress(ProcessLookupError):  # a driver that already ended has no group left
                os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert alive, f"the sweep ended before it could be killed:\n{log_path.read_text()[-3000:]}"
    assert len(finished) >= 2 and interrupted, f"no kill point reached:\n{log_path.read_text()[-3000:]}"
    return finished, interrupted


def check_resumed_sweep(client: Any, experiment: str, num_samples: int, finished_before: set[str],
                        interrupted: set[str]) -> list[Any]:
    """One child run per trial; finished trials never trained again; interrupted ones continued."""
    runs = child_runs(client, experiment)
    trial_ids = [r.data.tags["medtune.trial_id"] for r in runs]
    assert len(trial_ids) == num_samples and len(set(trial_ids)) == num_samples, trial_ids
    finished_after = finished_trial_ids(client, experiment)
    assert finished_before <= finished_after and len(finished_after) == num_samples
    for run in runs:
        trial = run.data.tags["medtune.trial_id"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        if trial in finished_before:
            assert len(steps) == len(set(steps)), f"finished trial {trial} trained again: epochs {steps}"
        if trial in interrupted:
            # Restarted from its checkpoint, not from scratch: epoch 1 was trained once.
            assert steps.count(1) == 1, f"interrupted trial {trial} started over: epochs {steps}"
        assert sorted(set(steps)) == list(range(1, max(steps) + 1)), steps
        assert run.info.status == "FINISHED"
        assert "best_checkpoint" in {a.path for a in client.list_artifacts(run.info.run_id)}
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.tags["medtune.resumed"] == "1"
    return runs


class MlflowServer:
    """``mlflow/start-server.sh`` as a process group of its own, on a given port of 127.0.0.1."""

    def __init__(self, workdir: Path, port: int, backend: str, artifacts: str, extra_env: dict[str, str] | None = None):
        self.workdir, self.port, self.uri = workdir, port, f"http://127.0.0.1:{port}"
        self.env = subprocess_env(**(extra_env or {}), MLFLOW_HOST="127.0.0.1", MLFLOW_PORT=str(port),
                                  MLFLOW_BACKEND_STORE_URI=backend, MLFLOW_ARTIFACTS_DESTINATION=artifacts)
        self.proc: Any = None
        self.starts = 0

    def start(self, timeout: float = 120) -> "MlflowServer":
        import subprocess
        import time
        import urllib.request

        self.starts += 1
        log = open(self.workdir / f"mlflow-server-{self.starts}.log", "w")
        self.proc = subprocess.Popen(["bash", str(REPO / "mlflow" / "start-server.sh")], cwd=self.workdir,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError((self.workdir / f"mlflow-server-{self.starts}.log").read_text()[-3000:])
                time.sleep(0.5)

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


#: Debian's Chromium, which Playwright drives for the tests about pages (never a browser it downloads).
CHROMIUM = Path("/usr/bin/chromium")
#: Headless as root in a sandbox with a closed network: no GPU, no background calls to Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def browser_unavailable(reason: str) -> None:
    """Skip on a developer machine without Chromium; under CI a missing browser is a failure."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (apt-get install chromium, pip install -e '.[test]')")
    pytest.skip(reason)


#: What make_kermany cycles through: image sizes (width, height) and file types.
KERMANY_SIZES = [(40, 30), (33, 50), (64, 64), (80, 45), (28, 28), (50, 70)]
KERMANY_EXTS = [".jpeg", ".png", ".jpg"]


def make_kermany(root: Path, per_class: int = 12, splits=("train", "val", "test"),
                 classes=("NORMAL", "PNEUMONIA")) -> Path:
    """Tiny Kermany-layout tree: varying sizes, L and RGB, jpeg/png; class 0 dark, class 1 bright."""
    rng = np.random.default_rng(0)
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                w, h = KERMANY_SIZES[i % len(KERMANY_SIZES)]
                base = 50 + 140 * c
                gray = np.clip(base + rng.integers(-20, 20, (h, w)), 0, 255).astype(np.uint8)
                img = Image.fromarray(gray)
                if i % 2:
                    img = Image.merge("RGB", [img, img, img])
                ext = KERMANY_EXTS[i % len(KERMANY_EXTS)]
                img.save(folder / f"{name.lower()}_{i:03d}{ext}")
    return root


#: The findings of ``make_multilabel_npz``: each a bright square mark at its own place.
MULTILABEL_FINDINGS = ("left_mark", "centre_mark", "right_mark")


def multilabel_arrays(n: tuple[int, int, int] = (96, 32, 48), size: int = 28, seed: int = 0,
                      rate: float = 0.35) -> dict[str, np.ndarray]:
    """Synthetic multi-label splits: dark noise with up to three independent bright marks (each
    present with probability ``rate``), one finding each; a small CNN learns them in a few epochs."""
    rng = np.random.default_rng(seed)
    spots = [(4, 4), (size // 2 - 3, size // 2 - 3), (size - 10, size - 10)]
    out: dict[str, np.ndarray] = {}
    for split, count in zip(("train", "val", "test"), n):
        labels = (rng.random((count, len(spots))) < rate).astype(np.uint8)
        images = rng.integers(0, 60, (count, size, size)).astype(np.uint8)
        for j, (r, c) in enumerate(spots):
            images[labels[:, j] == 1, r:r + 6, c:c + 6] = 230
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def make_multilabel_npz(path: Path, **kw: Any) -> Path:
    """``multilabel_arrays`` saved as an .npz with (N, 3) 0/1 labels."""
    np.savez_compressed(path, **multilabel_arrays(**kw))
    return path
