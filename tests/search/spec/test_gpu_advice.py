"""The GPU warnings of ``medtune validate`` and of a sweep's start, and the packing rule: pure
functions of the spec and the GPU and CPU counts, so no GPU is needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.search.spec import gpu_advice
from medtune.search.spec.gpu_advice import (
    TRIALS_PER_GPU,
    concurrent_trials,
    gpu_warnings,
    local_gpu_warnings,
    trials_per_gpu,
)
from medtune.search.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[3]
ONE_GPU = REPO / "spaces" / "one_gpu.yaml"


def spec(*sets: str):
    return load_spec(ONE_GPU, list(sets))


def test_the_shipped_one_gpu_space_fills_one_gpu_on_16_cores():
    s = spec()
    assert s.resources.gpu == 1 / TRIALS_PER_GPU and s.search.max_concurrent == TRIALS_PER_GPU
    assert gpu_warnings(s, gpus=1, cpus=16, where="the Ray cluster") == []
    assert trials_per_gpu(cpus_per_gpu=16, cpu_per_trial=s.resources.cpu) == TRIALS_PER_GPU


@pytest.mark.parametrize("cpus_per_gpu, cpu, expected", [(16, 2, 8), (32, 1, 8), (8, 2, 4), (1, 2, 1), (16, 0, 8)])
def test_the_packing_rule(cpus_per_gpu, cpu, expected):
    assert trials_per_gpu(cpus_per_gpu, cpu) == expected


def test_gpus_asked_for_where_there_are_none():
    (warning,) = gpu_warnings(spec(), gpus=0, cpus=2, where="this machine")
    assert warning.startswith("resources.gpu:") and "0.125 GPU" in warning and "has 0" in warning
    (whole,) = gpu_warnings(spec("resources.gpu=2"), gpus=1, cpus=16, where="the Ray cluster")
    assert "asks for 2 GPU" in whole and "has 1" in whole


def test_gpus_a_cpu_sweep_ignores():
    (warning,) = gpu_warnings(spec("resources.gpu=0"), gpus=2, cpus=16, where="this machine")
    assert "has 2 GPUs: trials train on the CPU" in warning and "0.125" in warning
    assert gpu_warnings(spec("resources.gpu=0"), gpus=0, cpus=16, where="this machine") == []


def test_too_few_trials_at_a_time_leave_gpus_idle():
    (warning,) = gpu_warnings(spec("search.max_concurrent=4"), gpus=1, cpus=16, where="the Ray cluster")
    assert warning.startswith("search.max_concurrent: 4 trials at a time x resources.gpu 0.125 claim 0.5 of the 1 GPU")
    assert "0.5 GPU's worth stays idle" in warning and "Run 8 at a time" in warning
    (two,) = gpu_warnings(spec(), gpus=2, cpus=64, where="the Ray cluster")
    assert "claim 1 of the 2 GPUs" in two and "Run 16 at a time" in two and "0.25 GPU" in two


def test_too_few_cpus_or_samples_leave_gpus_idle_too():
    (cpu_bound,) = gpu_warnings(spec(), gpus=1, cpus=8, where="the Ray cluster")
    assert "8 CPUs hold only 4 trials at resources.cpu 2" in cpu_bound
    assert concurrent_trials(spec("search.num_samples=3"), cpus=None) == 3
    (few,) = gpu_warnings(spec("search.num_samples=3"), gpus=1, cpus=None, where="this machine")
    assert "search.num_samples 3" in few


def test_validate_checks_this_machine_but_not_a_cluster(monkeypatch):
    import medtune.trainables.gpu_metrics as gpu_metrics

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(gpu_metrics, "local_gpu_count", lambda: 0)
    (warning,) = local_gpu_warnings(spec())
    assert "this machine has 0" in warning
    monkeypatch.setattr(gpu_advice.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(gpu_metrics, "local_gpu_count", lambda: 1)
    assert local_gpu_warnings(spec()) == []
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # the cluster's GPUs are counted by medtune sweep
    monkeypatch.setattr(gpu_metrics, "local_gpu_count", lambda: 0)
    assert local_gpu_warnings(spec()) == []
