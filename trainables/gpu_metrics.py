"""GPU metrics of a trial's epochs and of a whole sweep: the one module that talks to NVML.

Per epoch of a trial on CUDA (``EpochGpuMeter``): the peak memory the caching allocator handed
out (``torch.cuda.max_memory_allocated``, reset at the epoch's start) and the GPU's utilisation
over the epoch. Over a sweep (``sweep_sampler``, on the driver): the busy share of the GPUs of the
driver's node. On the CPU, or without a driver, these metrics are absent, never zero.

Why a sampling thread. NVML's ``nvmlDeviceGetUtilizationRates`` is the share of the driver's last
sample period (1/6 s to 1 s, by product) in which a kernel ran. Read every
``SAMPLE_INTERVAL_S`` by a daemon thread and averaged, it gives the busy share of the epoch, the
number ``nvidia-smi dmon``'s SM% column gives (how the 2026-11-30 measurements in docs/gpu.md were
taken). ``nvmlDeviceGetSamples`` would need no thread, but the driver's sample buffer holds a
length and period that vary by product and driver, and a long epoch outruns it; per-process
utilisation (``nvmlDeviceGetProcessUtilization``) is not offered under MIG and some vGPUs. The
thread queries the driver, never a CUDA stream: no training step waits for it and nothing is
synchronised; it wakes four times a second and holds the GIL for microseconds.

Utilisation is the device's, not the process's: trials that share a GPU (``resources.gpu: 0.125``)
each report the whole GPU's busy share. ``pynvml`` comes from the optional ``nvidia-ml-py``
(``pip install 'medtune[gpu]'``); without it a GPU trial still reports its peak memory.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: The epoch's mean GPU utilisation, in percent (0-100), of the device the trial trains on.
GPU_UTIL = "gpu_util_pct"
#: The epoch's peak of memory allocated by torch on that device, in MiB.
GPU_MEM_PEAK = "gpu_mem_peak_mib"
#: The sweep's mean GPU utilisation over ``Tuner.fit``, in percent, on the driver's node (parent run).
GPU_BUSY = "gpu_busy_pct"
#: Seconds between two reads of NVML's utilisation: several per driver period at most, and a
#: 1.5-second epoch (MobileNetV2 at 64 px on an H200) still gets six samples.
SAMPLE_INTERVAL_S = 0.25


def open_nvml() -> ModuleType | None:
    """``pynvml``, initialised; None where it is not installed or finds no NVIDIA driver (CPU machines).

    ``nvmlInit`` counts its callers, so calling this once per meter is cheap and safe; nothing here
    shuts NVML down (the process's exit does)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no GPU to measure
        log.debug("NVML unavailable: %s", exc)
        return None
    return pynvml


def visible_handles(nvml: ModuleType) -> list[Any]:
    """NVML handles of the GPUs this process may use, in CUDA's order.

    ``CUDA_VISIBLE_DEVICES`` (which Ray sets for each trial) lists indices or UUIDs (``GPU-...``,
    ``MIG-...``); CUDA stops at the first entry it cannot use, and so does this. Indices are
    NVML's (PCI bus order), which is CUDA's with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and, on nodes of
    one GPU model, its default order too. Unset: every GPU of the machine."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    handles = []
    for item in (part.strip() for part in listed.split(",")):
        if not item or item.startswith("-"):
            break
        try:
            handle = (nvml.nvmlDeviceGetHandleByIndex(int(item)) if item.isdigit()
                      else nvml.nvmlDeviceGetHandleByUUID(item))
        except Exception:  # an index or UUID this machine does not have: CUDA ignores the rest too
            break
        handles.append(handle)
    return handles


def local_gpu_count() -> int:
    """GPUs this process sees: NVML's count (after ``CUDA_VISIBLE_DEVICES``), else torch's."""
    nvml = open_nvml()
    if nvml is not None:
        return len(visible_handles(nvml))
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class UtilisationSampler:
    """Reads the utilisation of ``handles`` every ``interval_s`` on a daemon thread, between
    ``start`` and ``stop``; ``stop`` returns the mean over samples and devices, in percent.

    A read that fails (NVML reset, device lost) is skipped; with no sample at all ``stop`` returns
    None, so a metric is left out rather than reported as an idle GPU. ``timeline`` keeps each
    sample as (seconds since ``start``, mean over devices) for callers that want the shape."""

    def __init__(self, nvml: ModuleType, handles: list[Any], interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.nvml = nvml
        self.handles = list(handles)
        self.interval_s = interval_s
        self.timeline: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def read(self) -> float | None:
        """One sample: the mean utilisation of the devices now, or None if NVML could not answer."""
        try:
            values = [float(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self.handles]
        except Exception as exc:  # pynvml.NVMLError and its kin: skip this sample
            log.debug("NVML utilisation read failed: %s", exc)
            return None
        return sum(values) / len(values) if values else None

    def _record(self) -> None:
        value = self.read()
        if value is not None:
            self.timeline.append((time.monotonic() - self._started, value))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._record()

    def start(self) -> "UtilisationSampler":
        self.timeline, self._started = [], time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="medtune-nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float | None:
        """Stop sampling (one last sample covers the tail); the mean utilisation in percent, or None."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._record()
        return statistics.fmean(v for _, v in self.timeline) if self.timeline else None


def sweep_sampler(interval_s: float = 0.5) -> UtilisationSampler | None:
    """A sampler of every GPU the driver's process sees (on a local node: the GPUs its trials use),
    or None without NVML or GPUs. On a cluster whose head has no GPU it is None: the workers' GPUs
    are not measured from the driver."""
    nvml = open_nvml()
    if nvml is None:
        return None
    handles = visible_handles(nvml)
    return UtilisationSampler(nvml, handles, interval_s) if handles else None


def _handle_of(nvml: ModuleType, index: int) -> Any | None:
    """The NVML handle of torch's CUDA device ``index``: by its UUID where torch reports one, else
    by its place among the visible devices."""
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(index).uuid)
        return nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
    except Exception:
        handles = visible_handles(nvml)
        return handles[index] if index < len(handles) else None


class EpochGpuMeter:
    """A trial's per-epoch GPU metrics: ``start_epoch`` before its first step, ``end_epoch`` after
    its validation pass returns ``{GPU_MEM_PEAK: MiB, GPU_UTIL: percent}``, or ``{}`` on the CPU.

    ``index`` is torch's CUDA device index (None: not on a GPU); ``nvml``/``handle`` the device in
    NVML (None: memory only)."""

    def __init__(self, index: int | None, nvml: ModuleType | None = None, handle: Any = None,
                 interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.index, self.nvml, self.handle, self.interval_s = index, nvml, handle, interval_s
        self._sampler: UtilisationSampler | None = None

    @classmethod
    def for_device(cls, device: "torch.device") -> "EpochGpuMeter":
        if device.type != "cuda":
            return cls(None)
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        nvml = open_nvml()
        handle = _handle_of(nvml, index) if nvml is not None else None
        return cls(index, nvml if handle is not None else None, handle)

    def start_epoch(self) -> None:
        if self.index is None:
            return
        import torch

        torch.cuda.reset_peak_memory_stats(self.index)  # the allocator's host-side counters: no sync
        if self.nvml is not None:
            self._sampler = UtilisationSampler(self.nvml, [self.handle], self.interval_s).start()

    def end_epoch(self) -> dict[str, float]:
        if self.index is None:
            return {}
        import torch

        out = {GPU_MEM_PEAK: torch.cuda.max_memory_allocated(self.index) / 2**20}
        if self._sampler is not None:
            util, self._sampler = self._sampler.stop(), None
            if util is not None:
                out[GPU_UTIL] = util
        return out
