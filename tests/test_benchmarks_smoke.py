"""Tiny runs of the benchmark scripts, so that they keep working. Nothing here asserts on times."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from types import ModuleType

from helpers import REPO, subprocess_env


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module: the scripts are run by path, not installed."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_table_runs_final_on_a_paper_architecture(tmp_path):
    out = tmp_path / "paper_table.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/paper_table.py", "--skip-search", "--paper-architectures", "simple_cnn",
         "--paper-epochs", "1", "--out", str(out)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["architecture"] == "simple_cnn" and row["epochs"] == 1
    assert row["config"]["batch_size"] == 8 and row["config"]["dropout"] == 0.4  # the paper's fixed values
    assert 0.5 < row["test_auc"] <= 1 and 0 < row["test_accuracy"] <= 1
    assert "| paper: simple_cnn (imagenet) |" in proc.stdout and "Google AutoML Vision" in proc.stdout


def test_cpu_sampler_tells_the_trial_from_the_other_processes():
    CpuSampler = benchmark_module("cpu_sampler").CpuSampler

    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5: pass"
    with CpuSampler(interval=0.2) as sampler:
        time.sleep(0.5)
        subprocess.run([sys.executable, "-c", busy, "ImplicitFunc"], check=True, timeout=60)
        time.sleep(0.5)
    result = sampler.result()
    assert result["window_seconds"] > 0
    # The busy child burnt 1.5 s of CPU; whatever the sampler missed at the window's edges, most is there.
    assert result["trial_cores"] * result["window_seconds"] > 0.5
    assert "ImplicitFunc" not in json.dumps(result["other_by_process"])
    # The split of trial processes by thread holds the same CPU time.
    assert sum(result["trial_by_thread_name"].values()) * result["window_seconds"] > 0.5


def test_small_data_benchmark_runs_on_tiny_settings(tmp_path):
    # 120 / 40 images: val has < 100 per class, so demo.yaml's search.cv: auto cross-validates.
    # The baseline gets 5 epochs (one optimizer step each at batch 128): after 1 its AUC is chance.
    out = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/small_data.py", "--sets", "small", "--seeds", "0", "--samples", "2",
         "--baseline-epochs", "5", "--train-size", "120", "--val-size", "40", "--work", str(tmp_path / "work"),
         "--out", str(out), "--set", "search.scheduler.max_t=600", "--set", "search.scheduler.grace_period=300",
         "--set", "space.architecture={choice: [simple_cnn]}", "--set", "search.max_concurrent=1"],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    (search,) = [r for r in result["rows"] if r["kind"] == "search+final"]
    (baseline,) = [r for r in result["rows"] if r["kind"] == "baseline"]
    assert "error" not in search and "error" not in baseline, (search.get("traceback"), baseline.get("traceback"))
    assert 0.5 < search["test_auc"] <= 1 and 0.5 < baseline["test_auc"] <= 1
    assert search["cv_folds"] == 5 and search["trials"] == 2
    assert set(search["by_rule"]) == {"youden-mid", "youden", "calibrated", "0.5"}
    assert result["data"]["small-0"]["class_counts"]["test"] == [234, 390]  # the full test split
    assert "| baseline |" in proc.stdout and "small set: search AUC mean" in proc.stdout
