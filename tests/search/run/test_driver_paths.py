"""Relative paths mean the same in the driver and in every trial, and a sweep whose trials all fail
the same way stops after the first ones with one message. Real sweeps: ``medtune sweep`` in a
subprocess, started in a folder of its own, with Ray's trials in their own working directories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, subprocess_env

pytestmark = pytest.mark.slow

TINY_SWEEP = ["search.num_samples=1", "search.max_concurrent=1", "search.cv=null", "search.scheduler.unit=epochs",
              "search.scheduler.max_t=1", "search.scheduler.grace_period=1",
              "space.architecture={choice: [simple_cnn]}",
              "fixed.pretrained=none", "mlflow.enabled=false", "storage=results"]


def _npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = {s: np.repeat([0, 1], n) for s, n in (("train", 40), ("val", 12), ("test", 10))}
    arrays = {}
    for split, y in labels.items():
        images = rng.integers(0, 60, (len(y), 28, 28)).astype(np.uint8)
        images[y == 1, 8:20, 8:20] = 220  # class 1: a bright square
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, y.astype(np.uint8)[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _sweep(cwd: Path, overrides: list[str], name: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "medtune", "sweep", str(REPO / "spaces" / "demo.yaml"), "--name", name]
    for item in overrides:
        command += ["--set", item]
    return subprocess.run(command, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=600)


def test_a_relative_data_source_is_the_users_folder_in_every_trial(tmp_path):
    _npz(tmp_path / "data" / "tiny.npz")
    work = tmp_path / "work"
    work.mkdir()
    proc = _sweep(work, [*TINY_SWEEP, "data.source=../data/tiny.npz"], "relative")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (work / "results" / "relative" / "best_config.yaml").exists()


def test_trials_that_all_fail_the_same_way_stop_the_sweep_with_one_message(tmp_path):
    _npz(tmp_path / "tiny.npz")
    broken = tmp_path / "weights.pth"
    broken.write_bytes(b"not a checkpoint")  # exists (the spec check passes), but no trial can load it
    overrides = [o for o in TINY_SWEEP if not o.startswith(("search.num_samples", "search.max_concurrent",
                                                            "fixed.pretrained"))]
    proc = _sweep(tmp_path, [*overrides, "search.num_samples=12", "search.max_concurrent=2",
                             f"fixed.pretrained={broken}", f"data.source={tmp_path / 'tiny.npz'}"], "failing")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the first 2 trials all failed with the same error" in proc.stderr
    trials = [p for p in (tmp_path / "results" / "failing").iterdir() if p.name.startswith("trial_")]
    assert len(trials) < 12  # it did not spend the whole budget on the same failure
