"""Warnings about a sweep's GPU request against the GPUs there are, and the packing rule (docs/gpu.md).

One small-image trial leaves a GPU mostly idle: measured on one H200 (2026-11-30), MobileNetV2 at
64 px kept it 5-17% busy, and 8 trial processes sharing it reached 5.8x one trial's images/s (60%
busy), 16 reached 6.3x (77%). So a sweep on GPUs packs trials (``resources.gpu: 0.125``), and two
mistakes waste the machine without any error: asking for GPUs where there are none (the trials
wait forever; ``medtune sweep`` stops on it before a trial starts, ``medtune validate`` warns, as
it checks no cluster), and running too few trials at a time to claim every GPU
(``max_concurrent`` x ``resources.gpu`` below the GPU count, or too few CPUs for that many trials).

The functions take the counts; ``local_gpu_warnings`` fills them in for this machine.
"""

from __future__ import annotations

import math
import os

from medtune.search.spec.sweep_spec import SweepSpec

#: Small-image trials per GPU, past which throughput barely grows (5.8x at 8, 6.3x at 16, above).
TRIALS_PER_GPU = 8


def trials_per_gpu(cpus_per_gpu: float, cpu_per_trial: float) -> int:
    """The packing rule: ``TRIALS_PER_GPU`` trials on each GPU, fewer where the node's CPUs per GPU
    cannot give each its ``resources.cpu``; ``resources.gpu`` is then one over this."""
    fits = int(cpus_per_gpu // cpu_per_trial) if cpu_per_trial > 0 else TRIALS_PER_GPU
    return max(1, min(TRIALS_PER_GPU, fits))


def concurrent_trials(spec: SweepSpec, cpus: float | None) -> int:
    """Trials that can run at once: ``max_concurrent``, no more than ``num_samples``, and no more
    than ``cpus`` hold at ``resources.cpu`` each (where the CPU count is known)."""
    limit = min(spec.search.max_concurrent, spec.search.num_samples)
    if cpus is not None and spec.resources.cpu > 0:
        limit = min(limit, int(cpus // spec.resources.cpu))
    return limit


def gpu_warnings(spec: SweepSpec, gpus: float, cpus: float | None, where: str) -> list[str]:
    """What is wrong with the sweep's GPU request on ``gpus`` GPUs and ``cpus`` CPUs (``where``:
    "this machine", "the Ray cluster")."""
    share = spec.resources.gpu
    if share <= 0:
        if gpus <= 0:
            return []
        return [f"resources.gpu: 0, but {where} has {gpus:g} GPU{'s' * (gpus != 1)}: trials train on the CPU. "
                f"To train on them, pack trials: resources.gpu: {1 / TRIALS_PER_GPU:g} runs {TRIALS_PER_GPU} on "
                "each (docs/gpu.md)"]
    if gpus < share:
        return [f"resources.gpu: each trial asks for {share:g} GPU but {where} has {gpus:g}; `medtune sweep` stops on "
                "this before a trial starts, unless RAY_ADDRESS joins a cluster with GPUs. Set resources.gpu: 0 "
                "to train on CPUs"]
    running = concurrent_trials(spec, cpus)
    claimed = running * share
    if claimed >= gpus - 1e-9:
        return []
    cpu_bound = cpus is not None and running < min(spec.search.max_concurrent, spec.search.num_samples)
    why = (f"{cpus:g} CPUs hold only {running} trials at resources.cpu {spec.resources.cpu:g}" if cpu_bound
           else f"search.max_concurrent is {spec.search.max_concurrent}, search.num_samples "
                f"{spec.search.num_samples}")
    wanted = math.floor(gpus / share + 1e-9)
    return [f"search.max_concurrent: {running} trials at a time x resources.gpu {share:g} claim {claimed:g} of the "
            f"{gpus:g} GPU{'s' * (gpus != 1)} {where} has ({why}), so {gpus - claimed:g} GPU's worth stays idle. "
            f"Run {wanted} at a time, or give each trial {gpus / max(running, 1):g} GPU (docs/gpu.md)"]


def local_gpu_warnings(spec: SweepSpec) -> list[str]:
    """``gpu_warnings`` for this machine, as ``medtune validate`` sees it; none when ``RAY_ADDRESS``
    names a cluster, whose GPUs only ``medtune sweep`` counts (it joins the cluster)."""
    if os.environ.get("RAY_ADDRESS"):
        return []
    from medtune.trainables.gpu_metrics import local_gpu_count

    return gpu_warnings(spec, local_gpu_count(), os.cpu_count(), "this machine")
