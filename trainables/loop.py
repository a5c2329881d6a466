"""One epoch of training and one pass of inference: the hot path, kept free of bookkeeping.

Modelled on timm's ``train_one_epoch``/``validate``: the caller owns the model, optimizer and
batches; these functions only run them. Mixed precision is used on CUDA only (bfloat16 where the
GPU has it, else float16 with a gradient scaler); on the CPU everything stays float32.

Nothing here reads a GPU value back per batch: the loss is summed on the device and read once an
epoch, and inference keeps its probabilities on the device until the pass ends. A host read
(``.item()``, ``.cpu()``, ``float(t)``) waits for every queued kernel, so one per step would stall a
launch-bound GPU each step (``tests/trainables/test_host_sync.py`` counts them). With a float16
scaler, the optimizer is fused (``factories.build_optimizer``) so the scaler's inf check stays on
the GPU too.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn


@dataclass
class Precision:
    """How the forward pass runs: autocast dtype (or none) and the fp16 gradient scaler."""

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None

    @classmethod
    def for_dtype(cls, device: torch.device, dtype: torch.dtype | None) -> "Precision":
        """Autocast to ``dtype`` on CUDA (float16 with a gradient scaler); None, or any other device: float32.
        The dtype comes from ``medtune.trainables.device_defaults.resolved``."""
        if device.type != "cuda" or dtype is None:
            return cls(device, None, None)
        return cls(device, dtype, torch.amp.GradScaler("cuda") if dtype == torch.float16 else None)

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


class TimedBatches:
    """Wraps a batch iterable and adds up the time spent waiting for its batches (timm's ``data_time``).

    The time inside ``next()`` is what the model waits for data: indexing the cached split,
    converting, resizing, augmenting. Kept outside the loops so they stay free of bookkeeping.
    """

    def __init__(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches
        self.seconds = 0.0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        iterator = iter(self.batches)
        while True:
            started = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - started
                return
            self.seconds += time.perf_counter() - started
            yield batch

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)  # type: ignore[attr-defined]

    def take_seconds(self) -> float:
        """The waiting time since the last call (per epoch), and start counting again."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def train_one_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    optimizer: torch.optim.Optimizer, criterion: nn.Module, precision: Precision) -> tuple[float, int]:
    """Train over ``batches`` once; returns (mean loss per image, images seen)."""
    model.train()
    total_loss = torch.zeros((), device=precision.device)
    seen = 0
    for images, labels in batches:
        with precision.autocast():
            loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        if precision.scaler is not None:
            precision.scaler.scale(loss).backward()
            precision.scaler.step(optimizer)
            precision.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        # Accumulate on the device: a .item() per batch would synchronise a GPU every step.
        total_loss += loss.detach() * len(labels)
        seen += len(labels)
    return float(total_loss.item()) / max(seen, 1), seen


@torch.inference_mode()
def predict_proba(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                  precision: Precision, multilabel: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and labels for every image of ``batches`` (model in eval mode).

    Multi-label findings get a sigmoid per output (each finding's own probability) instead of a
    softmax; ``multilabel=None`` reads it off the labels, which are (B, L) for findings."""
    model.eval()
    probs, labels = [], []
    for images, y in batches:
        with precision.autocast():
            logits = model(images)
        sigmoid = y.ndim == 2 if multilabel is None else multilabel
        probs.append(torch.sigmoid(logits.float()) if sigmoid else torch.softmax(logits.float(), dim=1))
        labels.append(y)
    # One read back per pass, not one per batch (the probabilities are N x classes: small).
    return torch.cat(probs).cpu().numpy().astype(np.float64), torch.cat(labels).cpu().numpy().astype(np.int64)
