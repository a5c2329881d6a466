"""A trial's training budget in a unit that means the same on any data set.

An epoch budget is a different amount of training on every data set: six epochs are about 900
optimizer steps on PneumoniaMNIST (4,708 images, batch 32) and about 100 on a 546-image set. A
budget in optimizer ``steps`` or ``images`` seen is not, so the sweep's ``max_t`` and ASHA's rungs
can be counted in either. The training loop still evaluates and reports once per epoch; this
module turns a budget into the number of epochs that reaches it and names the counter each unit
is measured by (what ASHA's ``time_attr`` reads from every report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from medtune.trainables.objective import EPOCH

BUDGET_UNITS = ("epochs", "steps", "images")

#: The reported counter each budget unit is measured by (ASHA's ``time_attr``).
TIME_ATTR = {"epochs": EPOCH, "steps": "step", "images": "images_seen"}


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Optimizer steps in one epoch, as the training batches are cut.

    Training drops a last partial batch when the split is larger than one batch (a batch of one
    image breaks BatchNorm), so a 546-image split at batch 128 gives 4 steps, not 5.
    """
    if train_images <= batch_size:
        return 1
    return train_images // batch_size


def images_per_epoch(train_images: int, batch_size: int) -> int:
    """Images the optimizer sees in one epoch (the dropped partial batch not counted)."""
    if train_images <= batch_size:
        return train_images
    return steps_per_epoch(train_images, batch_size) * batch_size


def units_per_epoch(unit: str, train_images: int, batch_size: int) -> int:
    """How far one epoch moves the budget counter of ``unit``."""
    if unit == "epochs":
        return 1
    if unit == "steps":
        return steps_per_epoch(train_images, batch_size)
    if unit == "images":
        return images_per_epoch(train_images, batch_size)
    raise ValueError(f"unknown budget unit {unit!r}; expected one of {', '.join(BUDGET_UNITS)}")


def epochs_for_budget(unit: str, budget: int, train_images: int, batch_size: int) -> int:
    """The epochs that reach ``budget`` (rounded up: a trial trains at least its budget)."""
    return max(1, math.ceil(budget / max(units_per_epoch(unit, train_images, batch_size), 1)))


def stopped_early(last_result: Mapping[str, Any] | None, planned_epochs: int | None = None) -> bool:
    """Did a trial end before its planned epochs (ASHA stopped it, or the time budget ran out)?

    Trials report ``epochs_total``, their own epoch plan (it depends on the data and batch size
    when the budget is in steps or images); ``planned_epochs`` is the fallback for results that
    predate it.
    """
    if not last_result:
        return False
    epoch = int(last_result.get(EPOCH, 0) or 0)
    planned = last_result.get("epochs_total", planned_epochs)
    return planned is not None and epoch < int(planned)


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended, decided once when it ends: ``completed``, ``stopped_early`` (by ASHA or
    the time budget, before its planned epochs) or ``failed`` (with ``error``)."""

    kind: str
    last_epoch: int
    error: str = ""

    @classmethod
    def of(cls, last_result: Mapping[str, Any] | None, planned_epochs: int | None,
           error: str | None = None) -> "TrialOutcome":
        """The outcome of a trial whose last result is ``last_result``; ``error`` when it failed."""
        last_epoch = int((last_result or {}).get(EPOCH, 0))
        if error is not None:
            return cls("failed", last_epoch, error)
        if stopped_early(last_result, planned_epochs):
            return cls("stopped_early", last_epoch)
        return cls("completed", last_epoch)

    @property
    def label(self) -> str:
        """What the runs table adds to the run's name: ``done``, ``stopped@3`` or ``failed``."""
        return {"failed": "failed", "stopped_early": f"stopped@{self.last_epoch}"}.get(self.kind, "done")
