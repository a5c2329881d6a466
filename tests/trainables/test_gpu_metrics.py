"""GPU metrics without a GPU: a fake ``pynvml`` module stands in for NVML, and torch's memory
counters are replaced where a test needs a CUDA device."""

from __future__ import annotations

import sys
import threading
import time
from types import ModuleType, SimpleNamespace

import pytest
import torch

from medtune.trainables import gpu_metrics
from medtune.trainables.gpu_metrics import (
    GPU_MEM_PEAK,
    GPU_UTIL,
    EpochGpuMeter,
    UtilisationSampler,
    local_gpu_count,
    open_nvml,
    sweep_sampler,
    visible_handles,
)
from medtune.trainables.objective import LOGGED_METRICS, REPORTED_METRICS


class NVMLError(Exception):
    pass


def fake_nvml(utilisation: dict[str, list[float]], uuids: tuple[str, ...] = ("GPU-aaa", "GPU-bbb")) -> ModuleType:
    """A ``pynvml`` with GPUs named by ``uuids``; each read of a GPU's utilisation takes the next
    value of its list (the last one repeats), and a value of None raises NVMLError."""
    nvml = ModuleType("pynvml")
    nvml.NVMLError = NVMLError
    nvml.inits = 0
    reads = {uuid: list(values) for uuid, values in utilisation.items()}

    def init() -> None:
        nvml.inits += 1

    def rates(handle: str) -> SimpleNamespace:
        values = reads[handle]
        value = values.pop(0) if len(values) > 1 else values[0]
        if value is None:
            raise NVMLError("GPU is lost")
        return SimpleNamespace(gpu=value, memory=0)

    def by_uuid(uuid: str) -> str:
        if uuid not in uuids:
            raise NVMLError(f"not found: {uuid}")
        return uuid

    nvml.nvmlInit = init
    nvml.nvmlDeviceGetCount = lambda: len(uuids)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: uuids[i]
    nvml.nvmlDeviceGetHandleByUUID = by_uuid
    nvml.nvmlDeviceGetUtilizationRates = rates
    return nvml


@pytest.fixture
def no_cuda_visible(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_gpu_metrics_are_logged_and_never_an_objective():
    assert {GPU_UTIL, GPU_MEM_PEAK} <= set(LOGGED_METRICS)
    assert not {GPU_UTIL, GPU_MEM_PEAK} & set(REPORTED_METRICS)


def test_without_pynvml_there_is_no_nvml_and_torch_counts_the_gpus(monkeypatch, no_cuda_visible):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert open_nvml() is None and sweep_sampler() is None
    assert local_gpu_count() == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_nvml_that_finds_no_driver_is_no_nvml(monkeypatch):
    nvml = fake_nvml({})

    def no_driver() -> None:
        raise NVMLError("Driver Not Loaded")

    nvml.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert open_nvml() is None


@pytest.mark.parametrize("listed, expected", [
    (None, ["GPU-aaa", "GPU-bbb"]),
    ("1", ["GPU-bbb"]),
    ("1,0", ["GPU-bbb", "GPU-aaa"]),
    ("GPU-bbb", ["GPU-bbb"]),
    ("0,GPU-zzz,1", ["GPU-aaa"]),  # CUDA stops at the first device it does not have
    ("", []),
    ("-1", []),
])
def test_visible_handles_follow_cuda_visible_devices(monkeypatch, listed, expected):
    if listed is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)

    nvml = fake_nvml({})
    nvml.nvmlDeviceGetHandleByIndex = lambda i: ("GPU-aaa", "GPU-bbb")[i]  # IndexError past the end
    assert visible_handles(nvml) == expected


def test_local_gpu_count_is_nvmls_visible_count(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert local_gpu_count() == 1


def test_the_sampler_averages_over_samples_and_gpus_and_skips_failed_reads():
    nvml = fake_nvml({"GPU-aaa": [10, 30, 50], "GPU-bbb": [30, 50, 70]})
    sampler = UtilisationSampler(nvml, ["GPU-aaa", "GPU-bbb"], interval_s=0.01)
    assert sampler.read() == 20  # one read of each: (10 + 30) / 2
    sampler.start()
    time.sleep(0.1)
    mean = sampler.stop()
    assert mean is not None and 20 <= mean <= 60
    assert len(sampler.timeline) >= 2 and all(t >= 0 for t, _ in sampler.timeline)
    assert not any(t.name == "medtune-nvml-sampler" for t in threading.enumerate())  # the thread is gone

    lost = UtilisationSampler(fake_nvml({"GPU-aaa": [None]}), ["GPU-aaa"], interval_s=0.01).start()
    time.sleep(0.05)
    assert lost.stop() is None and lost.timeline == []  # absent, not an idle GPU


def test_a_short_epoch_still_gets_its_closing_sample():
    sampler = UtilisationSampler(fake_nvml({"GPU-aaa": [42]}), ["GPU-aaa"], interval_s=10).start()
    assert sampler.stop() == 42 and len(sampler.timeline) == 1


def test_the_sweep_sampler_reads_every_visible_gpu(monkeypatch, no_cuda_visible):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({"GPU-aaa": [20], "GPU-bbb": [60]}))
    sampler = sweep_sampler(interval_s=0.01)
    assert sampler is not None and sampler.handles == ["GPU-aaa", "GPU-bbb"]
    sampler.start()
    time.sleep(0.03)
    assert sampler.stop() == 40


def test_on_the_cpu_an_epoch_has_no_gpu_metrics():
    meter = EpochGpuMeter.for_device(torch.device("cpu"))
    meter.start_epoch()
    assert meter.end_epoch() == {}


def test_a_cuda_epoch_reports_peak_memory_and_utilisation(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda index: calls.append(("reset", index)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda index: 3 * 2**20)
    nvml = fake_nvml({"GPU-bbb": [70]})
    meter = EpochGpuMeter(1, nvml, "GPU-bbb", interval_s=0.01)
    meter.start_epoch()
    time.sleep(0.03)
    assert meter.end_epoch() == {GPU_MEM_PEAK: 3.0, GPU_UTIL: 70.0}
    assert calls == [("reset", 1)]
    # Without NVML (pynvml not installed): memory only.
    assert EpochGpuMeter(1).end_epoch() == {GPU_MEM_PEAK: 3.0}


def test_a_cuda_device_finds_its_nvml_handle_by_uuid_or_by_place(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({}))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid="bbb"))
    assert EpochGpuMeter.for_device(torch.device("cuda")).handle == "GPU-bbb"

    def no_uuid(index):
        raise RuntimeError("no CUDA")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_uuid)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # Ray gave this trial the second GPU
    meter = EpochGpuMeter.for_device(torch.device("cuda", 0))
    assert (meter.index, meter.handle) == (0, "GPU-bbb") and meter.nvml is sys.modules["pynvml"]


def test_the_training_function_reports_what_the_meter_measures(monkeypatch, tmp_path, pneumoniamnist_path):
    """The wiring in run_training: every epoch carries the meter's metrics (on the CPU the real meter
    returns none, so a stand-in reports for it)."""
    from medtune.trainables import train
    from medtune.trainables.reporters import LocalReporter

    class StandIn:
        started = 0

        def start_epoch(self) -> None:
            self.started += 1

        def end_epoch(self) -> dict[str, float]:
            return {GPU_UTIL: 12.5, GPU_MEM_PEAK: 100.0 + self.started}

    monkeypatch.setattr(train.EpochGpuMeter, "for_device", classmethod(lambda cls, device: StandIn()))
    reporter = LocalReporter(tmp_path / "run", num_threads=1)
    train.run_training({"architecture": "simple_cnn", "data_source": "pneumoniamnist", "data_train_subset": 128,
                        "data_val_subset": 64, "batch_size": 64, "epochs": 2}, reporter)
    assert [(h[GPU_UTIL], h[GPU_MEM_PEAK]) for h in reporter.history] == [(12.5, 101.0), (12.5, 102.0)]


def test_gpu_metrics_module_is_the_only_one_that_imports_pynvml():
    from helpers import REPO

    users = [p for p in [*(REPO / "trainables").rglob("*.py"), *(REPO / "search").rglob("*.py"),
                         *(REPO / "medtune").rglob("*.py")] if "pynvml" in p.read_text()]
    assert users == [REPO / "trainables" / "gpu_metrics.py"], users
    assert gpu_metrics.__doc__ and "nvidia-ml-py" in gpu_metrics.__doc__
