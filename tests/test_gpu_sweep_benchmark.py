"""benchmarks/gpu_sweep.py on a CPU: its parsing of Tune's results, its ratios and its NVML sampling
(with a fake ``pynvml``), and a tiny run of the whole script (slow). Nothing here asserts on times."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from helpers import REPO, subprocess_env


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """``benchmarks/gpu_sweep.py`` as a module: the scripts are run by path, not installed."""
    spec = importlib.util.spec_from_file_location("gpu_sweep", REPO / "benchmarks" / "gpu_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_trial(run: Path, trial_id: str, pid: int, arch: str, epochs: list[tuple[float, float]],
                images_each: int = 1000) -> None:
    """A trial folder as Tune writes it: one result line per epoch, (timestamp, epoch_seconds) each."""
    folder = run / f"trial_{trial_id}"
    folder.mkdir(parents=True)
    lines = [json.dumps({"trial_id": trial_id, "pid": pid, "config": {"architecture": arch}, "epoch": e,
                         "epoch_seconds": seconds, "images_per_sec": images_each / seconds,
                         "images_seen": e * images_each, "timestamp": stamp, "gpu_util_pct": 50.0,
                         "gpu_mem_peak_mib": 300.0 + e})
             for e, (stamp, seconds) in enumerate(epochs, start=1)]
    (folder / "result.json").write_text("\n".join(lines) + "\n")


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "ray_results" / "gpu-sweep-x"
    # Process 1 starts trial a (first epoch 12 s, then 2 s), and is reused for trial c (first 3 s, then 2 s);
    # process 2 runs trial b, stopped by ASHA after one epoch.
    write_trial(run, "a", 1, "mobilenetv2_100", [(1012.0, 12.0), (1014.0, 2.0), (1016.0, 2.0)])
    write_trial(run, "b", 2, "simple_cnn", [(1011.0, 1.0)], images_each=500)
    write_trial(run, "c", 1, "mobilenetv2_100", [(1019.0, 3.0), (1021.0, 2.0)])
    return run


def test_results_are_read_in_time_order_with_each_epochs_images(bench, run_folder):
    rows = bench.read_trial_results(run_folder)
    assert [(r["trial_id"], r["epoch"]) for r in rows] == [("b", 1), ("a", 1), ("a", 2), ("a", 3), ("c", 1), ("c", 2)]
    assert {r["images"] for r in rows if r["trial_id"] != "b"} == {1000} and rows[0]["images"] == 500
    assert rows[1]["architecture"] == "mobilenetv2_100" and rows[1]["gpu_mem_peak_mib"] == 301.0


def test_first_epoch_ratios_tell_fresh_processes_from_reused_ones(bench, run_folder):
    ratios = bench.first_epoch_ratios(bench.read_trial_results(run_folder))
    assert ratios["median_fresh"] == 6.0 and ratios["median_reused"] == 1.5  # 12 / 2 and 3 / 2
    assert set(ratios["trials"]) == {"a", "c"}  # b has no later epoch to compare with
    assert ratios["trials"]["a"]["fresh_process"] and not ratios["trials"]["c"]["fresh_process"]


def test_time_to_first_step_is_the_earliest_epoch_start(bench, run_folder):
    rows = bench.read_trial_results(run_folder)
    assert bench.seconds_to_first_step(rows, started_at=950.0) == 50.0  # trial a's epoch 1 began at 1000
    assert bench.seconds_to_first_step([], started_at=950.0) is None


def test_throughput_against_one_trial_and_one_trial_at_a_time(bench, run_folder):
    rows = bench.read_trial_results(run_folder)
    baseline = {"mobilenetv2_100": {"steady_images_per_s": 250.0}, "simple_cnn": {"steady_images_per_s": 1000.0}}
    out = bench.throughput(rows, baseline)
    # 5,500 images from 1000 s (trial a's start) to 1021 s.
    assert out["images"] == 5500 and out["span_s"] == 21.0
    assert out["aggregate_images_per_s"] == pytest.approx(5500 / 21)
    assert out["aggregate_over_one_trial"] == pytest.approx(5500 / 21 / 250)
    assert out["reference_architecture"] == "mobilenetv2_100"
    assert out["sequential_speedup"] == pytest.approx((5000 / 250 + 500 / 1000) / 21)
    partial = bench.throughput(rows, {"mobilenetv2_100": {"steady_images_per_s": 250.0}})
    assert partial["sequential_speedup"] is None and partial["aggregate_over_one_trial"] is not None
    assert bench.throughput([], baseline)["aggregate_images_per_s"] is None


def test_busy_shares_before_and_after_the_first_step(bench):
    timeline = [(0.1, 0.0), (0.6, 0.0), (1.2, 10.0), (2.5, 90.0), (2.9, 70.0)]
    out = bench.busy_shares(timeline, first_step_s=2.0)
    assert out["gpu_busy_pct"] == pytest.approx(34.0)
    assert out["gpu_busy_pct_before_first_step"] == pytest.approx(10 / 3)
    assert out["gpu_busy_pct_after_first_step"] == pytest.approx(80.0)
    assert out["timeline_1s"] == [[0, 0.0], [1, 10.0], [2, 80.0]]
    assert bench.busy_shares([], None)["gpu_busy_pct"] is None


def test_per_architecture_peaks(bench, run_folder):
    out = bench.per_architecture(bench.read_trial_results(run_folder))
    assert out["mobilenetv2_100"]["trials"] == 2 and out["mobilenetv2_100"]["gpu_mem_peak_mib_max"] == 303.0
    assert out["simple_cnn"]["epochs"] == 1


def test_the_sampler_uses_nvml_when_there_is_one(bench, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed: no sampler
    assert bench.gpu_sampler() is None
    nvml = ModuleType("pynvml")
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 1
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    nvml.nvmlDeviceGetUtilizationRates = lambda handle: SimpleNamespace(gpu=64)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sampler = bench.gpu_sampler()
    assert sampler is not None and sampler.handles == ["gpu0"]
    sampler.start()
    assert sampler.stop() == 64.0


@pytest.mark.parametrize("smoke", [False, True])
def test_the_sweeps_overrides_make_a_valid_space(bench, tmp_path, smoke):
    from medtune.search.spec.loader import load_spec

    args = bench.parse_args(["--cpu-smoke"] if smoke else [])
    spec = load_spec(REPO / args.space, bench.sweep_overrides(args, tmp_path, mlflow_on=not smoke, time_budget_s=200))
    assert spec.resources.gpu == (0 if smoke else 0.125) and spec.search.max_concurrent == args.concurrent
    assert spec.search.scheduler.unit == "epochs" and spec.search.cv is None and spec.search.time_budget_s == 200
    assert spec.mlflow.enabled is not smoke and spec.data.image_size == (28 if smoke else 64)
    assert set(spec.architectures) == set(args.architectures)


def test_the_summary_names_what_was_not_measured(bench):
    empty = {"median_fresh": None, "median_reused": None, "trials": {}}
    sweep = {"trials": 0, "epochs": 0, "wall_s": 1.0, "returncode": 0, **bench.busy_shares([], None),
             **bench.throughput([], {}), "seconds_to_first_step": None, "driver_gpu_busy_pct": None,
             "first_epoch_ratio": empty}
    text = bench.summary({"device": "cpu", "mlflow": "off", "sweep": sweep})
    assert "GPU busy n/a%" in text and "first step after n/a s" in text


def test_the_docstring_holds_the_one_call_for_the_device(bench):
    doc = bench.__doc__
    assert "../shared/offline-gpu/build-wheels.sh .whl" in doc and "--no-index" in doc and "--find-links" not in doc
    assert "$OUT/gpu_sweep.json" in doc and "--cpu-smoke" in doc
    assert isinstance(bench.parse_args([]), argparse.Namespace)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a baseline, then a 2-trial sweep in a child process: minutes on 2 busy cores
def test_the_script_runs_its_cpu_smoke_mode(tmp_path):
    out = tmp_path / "gpu_sweep.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_sweep.py", "--cpu-smoke", "--out", str(out)],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["mlflow"] in ("sqlite", "off (mlflow not installed)")
    assert result["baseline"]["simple_cnn"]["epochs"] == 2 and result["baseline"]["simple_cnn"]["steady_images_per_s"]
    sweep = result["sweep"]
    assert sweep["returncode"] == 0 and sweep["trials"] == 2 and sweep["epochs"] == 2
    assert sweep["seconds_to_first_step"] > 0 and sweep["aggregate_images_per_s"] > 0
    assert sweep["gpu_busy_pct"] is None and sweep["driver_gpu_busy_pct"] is None  # no GPU: absent, not 0
    assert "GPU busy n/a%" in proc.stdout
