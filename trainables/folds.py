"""The models one trial trains: one, or the k fold models of a cross-validated trial, and racing over them.

A ``FoldRun`` is one model on one train/val pair. A cross-validated trial (``cv_folds``) trains
its k fold models of train + val in lockstep, epoch by epoch, and reports the mean over folds with
its standard error. A racing one (``cv_race_until``: ASHA's last rung) trains its first fold alone
until that rung and reports ``<metric>_race`` meanwhile; then the other folds join, caught up to
the same epoch (``folds_in_epoch``, ``catch_up``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medtune.trainables.config import TrialConfig
from medtune.trainables.data import DatasetSplits, SplitArrays
from medtune.trainables.data.splits import kfold_pairs, pooled
from medtune.trainables.device_defaults import resolved
from medtune.trainables.factories import (
    build_lr_schedule,
    build_optimizer,
    build_trial_model,
    class_weights,
    make_batches,
)
from medtune.trainables.loop import Precision, TimedBatches, train_one_epoch
from medtune.trainables.models import TransferModel
from medtune.trainables.multilabel_loss import multilabel_criterion
from medtune.trainables.objective import FOLD_MEAN_METRICS, race_metric


def fold_splits(cfg: TrialConfig, data: DatasetSplits) -> list[tuple[SplitArrays, SplitArrays, np.ndarray | None]]:
    """(train, val, val rows of the pool) per model: one pair, or the folds of train + val."""
    if not cfg.cv_folds:
        return [(data.train, data.val, None)]
    return list(kfold_pairs(pooled(data.train, data.val), cfg.cv_folds, cfg.data_split_seed))


@dataclass
class FoldRun:
    """One model training on one train/val pair: a whole trial, or one fold of a cross-validated one."""

    model: TransferModel
    optimizer: torch.optim.Optimizer
    lr_schedule: Any
    criterion: nn.Module
    train_batches: TimedBatches
    val_batches: TimedBatches
    val_rows: np.ndarray | None

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_schedule": self.lr_schedule.state_dict() if self.lr_schedule is not None else None}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        # Whether the step is fused belongs to this device (factories.fused_on), not to the one that
        # saved; torch also places the step counters by it (on the GPU for a fused step).
        saved = state["optimizer"]
        if len(saved["param_groups"]) == len(self.optimizer.param_groups):  # else torch says what differs
            saved = {**saved, "param_groups": [{**group, "fused": mine.get("fused")} for group, mine
                                               in zip(saved["param_groups"], self.optimizer.param_groups)]}
        self.optimizer.load_state_dict(saved)
        if self.lr_schedule is not None and state.get("lr_schedule") is not None:
            self.lr_schedule.load_state_dict(state["lr_schedule"])


def build_fold_run(cfg: TrialConfig, train: SplitArrays, val: SplitArrays, val_rows: np.ndarray | None,
                   num_classes: int, epochs: int, device: torch.device) -> FoldRun:
    model = build_trial_model(cfg, num_classes).to(device)
    if resolved(cfg, device).channels_last:  # the batches' layout (make_batches resolves the same)
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)
    if train.labels.ndim == 2:  # multi-label findings: a sigmoid per output, pos_weight for class_weighted
        criterion: nn.Module = multilabel_criterion(train.labels, cfg.class_weighted, cfg.label_smoothing, device)
    else:
        weight = class_weights(train.labels, num_classes).to(device) if cfg.class_weighted else None
        criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    return FoldRun(model=model, optimizer=optimizer, lr_schedule=build_lr_schedule(cfg, optimizer, epochs),
                   criterion=criterion,
                   train_batches=TimedBatches(make_batches(cfg, train, train=True, device=device)),
                   val_batches=TimedBatches(make_batches(cfg, val, train=False, device=device)),
                   val_rows=val_rows)


def mean_over_folds(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over folds, and for k > 1 its standard error as ``<name>_sem``. A metric
    some folds lack (a finding's AUC where a fold's val has no positive of it) is the mean over the
    folds that have it."""
    if len(per_fold) == 1:
        return dict(per_fold[0])
    out: dict[str, float] = {}
    for key in dict.fromkeys(key for m in per_fold for key in m):
        values = np.array([m[key] for m in per_fold if key in m], dtype=np.float64)
        out[key] = float(np.nanmean(values))
        finite = values[np.isfinite(values)]
        out[f"{key}_sem"] = float(finite.std(ddof=1) / np.sqrt(len(finite))) if len(finite) > 1 else float("nan")
    return out


def folds_in_epoch(cfg: TrialConfig, epoch: int, units_each: int) -> int:
    """How many fold models train in ``epoch``: one while the trial races, every fold after.

    A racing trial (``cv_race_until``, ASHA's last rung) trains its first fold alone until the
    epoch whose budget counter reaches that rung, so ASHA compares every trial there on the same
    fold; the epoch after it the other folds join. Most trials never get that far, so most pay for
    one fold model instead of k (``benchmarks/small_data.py`` measures what that buys).
    """
    if not cfg.cv_folds:
        return 1
    if cfg.cv_race_until is None:
        return cfg.cv_folds
    return 1 if (epoch - 1) * units_each < cfg.cv_race_until else cfg.cv_folds


def fold_metrics(per_fold: list[dict[str, float]], folds: int | None, racing: bool) -> dict[str, float]:
    """The epoch's validation metrics: the mean over folds (with ``_sem``), and for a racing trial
    each fold-mean metric again as ``<name>_race`` over the folds trained so far.

    While fewer than all folds train, the k-fold estimates are NaN (not estimated yet), so nothing
    that selects by the objective (the leaderboard, Optuna's value, the best checkpoint) can pick an
    epoch judged on fewer images than the others.
    """
    mean = mean_over_folds(per_fold)
    if not racing:
        return mean
    out = {race_metric(k): v for k, v in mean.items() if k in FOLD_MEAN_METRICS}
    out["cv_folds_active"] = len(per_fold)
    if len(per_fold) < (folds or 1):
        out.update({k: math.nan for k in mean})
    else:
        out.update(mean)
    return out


def catch_up(run: FoldRun, epochs: int, precision: Precision) -> None:
    """Train a fold model that joins a racing trial late through the epochs the others trained."""
    for epoch in range(1, epochs + 1):
        run.train_batches.set_epoch(epoch)
        train_one_epoch(run.model, run.train_batches, run.optimizer, run.criterion, precision)
        if run.lr_schedule is not None:
            run.lr_schedule.step()
    run.train_batches.take_seconds()
