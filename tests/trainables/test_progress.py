"""Progress on long work and a console a user can read: per-epoch lines from ``medtune final``,
``-q``/``-v``/``--version``, and no snapshot warnings from Ray when epochs are short."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, subprocess_env

from medtune.cli import main
from medtune.trainables.progress import PROGRESS_ENV, EpochProgress, progress
from medtune.trainables.reporters import LocalReporter

DEMO = str(REPO / "spaces" / "demo.yaml")


def _report_epochs(reporter: EpochProgress, epochs: int) -> None:
    for epoch in range(1, epochs + 1):
        reporter.report({"epoch": epoch, "epochs_total": epochs, "train_loss": 1.0 / epoch,
                         "val_auc": 0.5 + epoch / 10}, None)
    reporter.close()


def test_every_epoch_is_one_line_with_loss_metric_and_time_left_away_from_a_terminal(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    stream = io.StringIO()  # not a terminal, like a Ray job's log
    inner = LocalReporter(tmp_path, metric="val_auc", mode="max")
    reporter = EpochProgress(inner, "final resnet18", "val_auc", stream=stream)
    _report_epochs(reporter, 4)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 4, lines
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith("final resnet18:") and f" {epoch}/4 " in line, line
        assert f"train_loss={1.0 / epoch:.4f}" in line and f"val_auc={0.5 + epoch / 10:.4f}" in line, line
        assert re.search(r"\[\d\d:\d\d<(\?|\d\d:\d\d)", line), line  # elapsed < time left
    assert len(reporter.history) == 4 and inner.best["epoch"] == 4  # the wrapped reporter saw every epoch


def test_quiet_turns_progress_off(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    stream = io.StringIO()
    _report_epochs(EpochProgress(LocalReporter(tmp_path), "final", "val_auc", stream=stream), 3)
    with progress(total=3, desc="decoding", delay=0, stream=stream) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


def test_quick_work_shows_no_bar(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    stream = io.StringIO()
    with progress(total=10, desc="decoding", stream=stream) as bar:  # done well within the 2 s delay
        bar.update(10)
    assert stream.getvalue() == ""


def test_version_flag():
    from importlib.metadata import version

    out = subprocess.run([sys.executable, "-m", "medtune.cli", "--version"], capture_output=True, text=True,
                         env=subprocess_env(), check=True)
    assert out.stdout.strip() == f"medtune {version('medtune')}"


def test_quiet_and_verbose_set_the_log_level_and_the_progress_switch(monkeypatch, capsys):
    import logging
    import os

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    root = logging.getLogger()
    level = root.level
    try:
        assert main(["-v", "architectures"]) == 0 and root.level == logging.DEBUG
        assert os.environ.get(PROGRESS_ENV) is None
        assert main(["-q", "architectures"]) == 0 and root.level == logging.WARNING
        assert os.environ[PROGRESS_ENV] == "0"
    finally:
        root.setLevel(level)
    with pytest.raises(SystemExit):
        main(["-q", "-v", "architectures"])  # one or the other
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
def test_final_prints_a_line_per_epoch_and_quiet_prints_no_info(tmp_path, pneumoniamnist_path):
    args = ["final", DEMO, "--set", "space={}", "--set", "mlflow.enabled=false",
            "--set", "fixed.architecture=simple_cnn",
            "--set", "fixed.pretrained=none", "--set", "data.train_subset=300", "--set", "data.val_subset=100",
            *[a for o in ("search.scheduler.unit=epochs", "search.scheduler.max_t=3",
                          "search.scheduler.grace_period=1", "search.cv=null") for a in ("--set", o)]]
    env = subprocess_env()
    env.pop(PROGRESS_ENV, None)
    out = subprocess.run(["medtune", *args, "--out", str(tmp_path / "a")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    epoch_lines = [line for line in out.stderr.splitlines() if line.startswith("final simple_cnn:")]
    assert [re.search(r" (\d)/3 ", line).group(1) for line in epoch_lines] == ["1", "2", "3"], out.stderr[-3000:]
    assert all("val_auc=" in line and "train_loss=" in line for line in epoch_lines)

    # -v and -q on `validate` (cheap: no training): DEBUG logs of the data it loads, or none at all
    validate = ["validate", DEMO, "--set", "data.train_subset=300", "--set", "data.val_subset=100"]
    loud = subprocess.run(["medtune", "-v", *validate], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    quiet = subprocess.run(["medtune", "-q", *validate], capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=300)
    assert loud.returncode == quiet.returncode == 0, quiet.stderr[-3000:]
    assert "DEBUG" in loud.stderr and "DEBUG" not in quiet.stderr and "INFO" not in quiet.stderr
    assert "valid" in quiet.stdout  # the result itself is still printed


@pytest.mark.slow
def test_short_epochs_do_not_make_ray_warn_about_snapshots(tmp_path, pneumoniamnist_path):
    """28-px images and ~550 training images: epochs of a fraction of a second. Checkpointing each
    of them made Tune force an experiment snapshot every couple of epochs and warn about it."""
    space = tmp_path / "short_epochs.yaml"
    space.write_text(f"""
name: short-epochs
data: {{source: {pneumoniamnist_path}, image_size: 28, train_subset: 546, val_subset: 78}}
metric: {{name: val_auc, mode: max}}
search:
  num_samples: 2
  max_concurrent: 2
  sampler: {{name: tpe, seed: 0}}
  scheduler: {{name: fifo, unit: epochs, max_t: 15}}
resources: {{cpu: 1, gpu: 0}}
space:
  lr: {{loguniform: [3.0e-4, 3.0e-3]}}
fixed: {{architecture: simple_cnn, pretrained: none, batch_size: 64}}
mlflow: {{enabled: false}}
storage: {tmp_path / "ray_results"}
""")
    out = subprocess.run(["medtune", "sweep", str(space)], capture_output=True, text=True, cwd=tmp_path,
                         env=subprocess_env(), timeout=600)
    console = out.stdout + out.stderr
    assert out.returncode == 0, console[-3000:]
    # A checkpoint at most every 5 s (plus each trial's last): only two trials ending within 5 s of
    # each other can still force snapshots that close together. Checkpointing every epoch: 9 here.
    warnings = console.count("snapshotting has been triggered")
    assert warnings <= 1, (warnings, console[-3000:])
    assert "Checkpoint successfully created" not in console  # one line per checkpoint per trial, before
    assert list(Path(tmp_path / "ray_results").glob("*/trial_*/checkpoint_*")), "trials still checkpoint"
