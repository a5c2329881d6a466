"""Tiny runs of the benchmark scripts, so that they keep working. Nothing here asserts on times."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from types import ModuleType

import pytest
from helpers import REPO, subprocess_env


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module: the scripts are run by path, not installed."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two sweeps, two finals and a baseline: minutes on 2 cores
def test_small_data_benchmark_runs_on_tiny_settings(tmp_path):
    # 120 / 40 images: val has < 100 per class, so demo.yaml's search.cv: auto cross-validates, and the
    # 'after' arm races over folds. The baseline gets 5 epochs (one optimizer step each at batch 128).
    out = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/small_data.py", "--sets", "pneumonia-small", "--seeds", "0", "--samples", "2",
         "--arms", "before", "after", "--baseline-epochs", "5", "--train-size", "120", "--val-size", "40",
         "--work", str(tmp_path / "work"), "--out", str(out), "--set", "search.scheduler.max_t=600",
         "--set", "search.scheduler.grace_period=300", "--set", "space.architecture={choice: [simple_cnn]}",
         "--set", "search.max_concurrent=1"],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["arm"]: r for r in result["rows"]}
    assert set(rows) == {"before", "after", "baseline"}
    assert all("error" not in r for r in rows.values()), [r.get("traceback") for r in rows.values()]
    before, after = rows["before"], rows["after"]
    assert before["cv_folds"] == 5 and before["cv_racing_until"] is None and before["trials"] == 2
    assert after["cv_racing_until"] == 300 and after["configs_judged"] >= 1 and after["configs_per_cpu_hour"] > 0
    assert 0.5 < after["test_auc"] <= 1 and 0.5 < rows["baseline"]["test_auc"] <= 1
    assert {"balanced-1se", "youden-mid", "balanced", "prior", "sensitivity:0.90"} <= set(after["by_rule"])
    assert 0 <= after["by_rule"]["balanced"]["balanced_accuracy"] <= 1
    assert result["data"]["pneumonia-small-0"]["class_counts"]["test"] == [234, 390]  # the full test split
    assert "### pneumonia-small" in proc.stdout and "configurations per CPU-hour" in proc.stdout


def test_colour_cost_times_both_modes_in_pairs(tmp_path):
    colour_cost = benchmark_module("colour_cost")
    row = colour_cost.measure(size=16, images=64, batch_pairs=2, step_pairs=2)
    assert row["cache_bytes_per_image"] == {"grey": 256, "colour": 768}
    for part in ("batch_preparation", "train_step"):
        assert row[part]["pairs"] == 2 and row[part]["colour_over_grey"] > 0
        assert row[part]["grey_us_per_image"] > 0 and row[part]["colour_us_per_image"] > 0
    assert row["train_step"]["colour_over_grey_from_batches"] > 0


def test_predict_throughput_times_the_predict_path_against_the_bare_forward_pass(tmp_path):
    predict_throughput = benchmark_module("predict_throughput")
    out = tmp_path / "predict_throughput.json"
    result = predict_throughput.main(["--repeats", "1", "--images", "70", "70", "--batch-size", "32",
                                      "--architectures", "simple_cnn", "--out", str(out)])
    (row,) = result["rows"]
    assert (row["architecture"], row["image_size"], row["images"], row["batch_size"]) == ("simple_cnn", 28, 70, 32)
    for key in ("predict_images_per_s", "predict_arrays_images_per_s", "bare_forward_images_per_s",
                "end_to_end_images_per_s", "ratio", "ratio_arrays", "cpu_ratio", "cpu_ratio_arrays"):
        assert row[key] > 0, key
    written = json.loads(out.read_text())["rows"][0]
    assert written["ratio"] == row["ratio"] and len(written["runs_wall_cpu"]["predict"]) == 1


def test_first_epoch_times_the_first_report_against_steady_epochs(tmp_path, pneumoniamnist_path):
    first_epoch = benchmark_module("first_epoch")
    out = tmp_path / "first_epoch.json"
    result = first_epoch.main(["--epochs", "3", "--architecture", "simple_cnn", "--pretrained", "none",
                               "--train-subset", "64", "--val-subset", "32", "--in-process", "--out", str(out)])
    for key in ("start_to_first_report_s", "steady_epoch_s", "ratio", "cpu_ratio", "data_load_s"):
        assert result[key] > 0, key
    assert len(result["report_wall_s"]) == 3 and result["config"]["architecture"] == "simple_cnn"
    assert json.loads(out.read_text())["ratio"] == result["ratio"]
