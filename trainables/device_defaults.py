"""Settings whose best value depends on the device: what ``auto`` means on a CPU and on a GPU.

Why a table: the same space file runs on a 2-core laptop and on a GPU node, and for four settings
the fast value on one is the slow value on the other. Measured (``docs/gpu.md``, "Per-device
defaults", lists each figure with its source):

* ``channels_last``: on the CPU it makes MobileNetV2 and EfficientNet-Lite0 at 64 px 1.5-1.8x faster
  (2 CPU threads, measured on this project's 2-core machine). On CUDA it made the first train step
  7.4 s instead of 0.76 s and every validation pass 1.7-2.6 s instead of 0.07-0.12 s, for a steady
  train step of 0.025 s against 0.029 s (measured on an H200 on 2026-11-30, ``docs/gpu.md``): off.
* ``amp_dtype``: bfloat16 reached the same val AUC as float32 on that GPU (0.996 / 0.996) and needs
  no gradient scaler, whose ``found_inf`` check reads the GPU every step; so ``auto`` is bfloat16
  where the GPU has it natively (not emulated), else float16. No autocast on the CPU (as before).
* ``cudnn_benchmark``: a trial's input sizes are fixed (one image size, ``drop_last`` training
  batches), which is the case cuDNN's autotuner is for: on for CUDA. Not measured here yet.
* ``eval_batch_size``: evaluation keeps no activations for a backward pass (``inference_mode``),
  so it holds about one layer's activations at a time where training holds every layer's: four
  training batches at once still need less memory than one training step, which already fits. On
  a launch-bound GPU (5-17% busy for MobileNetV2 at 64 px) fewer, larger batches cut the passes'
  kernel launches; 1024 caps it so a big model at 224 px stays small beside other trials sharing
  the GPU. On the CPU throughput does not grow past a few dozen images: 256 (the old fixed value).

An explicit value in the space file always wins. Resolving asks CUDA nothing, except whether the
GPU has bfloat16 (``bf16_supported``, injectable), and only when that decides the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from medtune.trainables.config import TrialConfig

__all__ = ["AUTO", "DEVICE_DEFAULTS", "OTHER_DEVICES", "DeviceDefaults", "Resolved", "configure_backends",
           "defaults_for", "resolved"]

AUTO = "auto"
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class DeviceDefaults:
    """What ``auto`` means on one kind of device (``torch.device.type``)."""

    channels_last: bool
    cudnn_benchmark: bool
    #: Mixed precision (``amp: true``) autocasts on this device.
    autocast: bool
    #: The eval batch: ``eval_batch_factor`` training batches, at least ``eval_batch_min`` images and at
    #: most ``eval_batch_max`` (None: no cap), never fewer than one training batch.
    eval_batch_factor: int
    eval_batch_min: int
    eval_batch_max: int | None

    def eval_batch_size(self, train_batch_size: int) -> int:
        size = max(self.eval_batch_factor * train_batch_size, self.eval_batch_min)
        if self.eval_batch_max is not None:
            size = min(size, self.eval_batch_max)
        return max(size, train_batch_size)


#: The table behind every ``auto``; ``docs/gpu.md`` shows it with the measurements.
DEVICE_DEFAULTS: dict[str, DeviceDefaults] = {
    "cpu": DeviceDefaults(channels_last=True, cudnn_benchmark=False, autocast=False,
                          eval_batch_factor=1, eval_batch_min=256, eval_batch_max=None),
    "cuda": DeviceDefaults(channels_last=False, cudnn_benchmark=True, autocast=True,
                           eval_batch_factor=4, eval_batch_min=256, eval_batch_max=1024),
}
#: Any other device (``mps``, ``xpu``, ...): torch's own defaults, nothing measured.
OTHER_DEVICES = DeviceDefaults(channels_last=False, cudnn_benchmark=False, autocast=False,
                               eval_batch_factor=1, eval_batch_min=256, eval_batch_max=None)


def defaults_for(device: torch.device | str) -> DeviceDefaults:
    """The ``auto`` values for ``device``'s kind; asks the device nothing."""
    return DEVICE_DEFAULTS.get(torch.device(device).type, OTHER_DEVICES)


@dataclass(frozen=True)
class Resolved:
    """A trial's device settings with every ``auto`` replaced by the value for its device."""

    channels_last: bool
    #: The autocast dtype, or None for float32 throughout.
    amp_dtype: torch.dtype | None
    cudnn_benchmark: bool
    eval_batch_size: int


def _native_bf16() -> bool:
    # Emulated bfloat16 (pre-Ampere GPUs) is slower than float16 with a scaler.
    return torch.cuda.is_bf16_supported(including_emulation=False)


def _pick(value: Any, default: Any) -> Any:
    return default if value == AUTO else value


def resolved(cfg: TrialConfig, device: torch.device | str, *,
             bf16_supported: Callable[[], bool] | None = None) -> Resolved:
    """``cfg``'s device settings on ``device``: explicit values as given, ``auto`` from the table.

    ``bf16_supported`` answers whether the GPU has bfloat16 (default: ask CUDA); it is called only
    for a CUDA device with ``amp`` on and ``amp_dtype: auto``.
    """
    device = torch.device(device)
    table = defaults_for(device)
    dtype = None
    if cfg.amp and table.autocast:
        if cfg.amp_dtype == AUTO:
            dtype = torch.bfloat16 if (bf16_supported or _native_bf16)() else torch.float16
        else:
            dtype = _DTYPES[cfg.amp_dtype]
    return Resolved(
        channels_last=bool(_pick(cfg.channels_last, table.channels_last)),
        amp_dtype=dtype,
        cudnn_benchmark=bool(_pick(cfg.cudnn_benchmark, table.cudnn_benchmark)),
        eval_batch_size=int(_pick(cfg.eval_batch_size, table.eval_batch_size(cfg.batch_size))),
    )


def configure_backends(cfg: TrialConfig, device: torch.device | str) -> None:
    """Set what is process-wide once per trial: ``cudnn.benchmark`` on a CUDA device (the CPU's untouched)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(_pick(cfg.cudnn_benchmark, defaults_for(device).cudnn_benchmark))
