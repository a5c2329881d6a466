"""The training function: one trial of a sweep, and also the final training run.

``tune_trainable`` is what Ray Tune runs; ``run_training`` is the same loop without Ray (the final
run and the tests use it through ``LocalReporter``). It builds data and models from the trial's
config (``medtune.trainables.factories``, ``medtune.trainables.folds``), trains epoch by epoch and
reports, after every epoch, the validation metrics plus a checkpoint when one is due
(``medtune.trainables.checkpoints``). When Tune restarts a trial it hands the last checkpoint back
and the loop continues at the next epoch.

Three settings change what one trial trains:

* ``budget_unit``/``budget``: the budget in optimizer steps or images seen
  (``medtune.trainables.budget``); the trial turns it into epochs for its own data and batch size and
  reports the counters (``step``, ``images_seen``) that ASHA's rungs read.
* ``cv_folds``: k-fold cross-validation over train + val for small data sets, where choosing among
  many configurations by a few dozen validation images would reward noise. The k fold models train
  in lockstep, epoch by epoch, and every report carries the mean over folds (what Optuna is told)
  with its standard error (``val_auc_sem``).
* ``cv_race_until``: racing over folds. One fold model trains alone until ASHA's last rung (where
  ASHA compares trials by ``<objective>_race``), then the others join; most trials never get there
  and cost one model instead of k.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtune.trainables.budget import epochs_for_budget, images_per_epoch, steps_per_epoch, units_per_epoch
from medtune.trainables.checkpoints import (
    CHECKPOINTS_PER_TRIAL,
    checkpoint_due,
    checkpoint_model_state,
    cuda_rng_state,
    load_checkpoint,
    restore_cuda_rng,
    save_checkpoint,
)
from medtune.trainables.config import TrialConfig
from medtune.trainables.data import DataConfig, DatasetSplits, load_splits
from medtune.trainables.device_defaults import configure_backends
from medtune.trainables.factories import (
    build_lr_schedule,
    build_optimizer,
    build_trial_model,
    class_weights,
    effective_pretrained,
    input_channels,
    make_batches,
    pick_device,
    precision_for,
    seed_everything,
    with_data_channels,
)
from medtune.trainables.folds import (
    FoldRun,
    build_fold_run,
    catch_up,
    fold_metrics,
    fold_splits,
    folds_in_epoch,
    mean_over_folds,
)
from medtune.trainables.gpu_metrics import EpochGpuMeter
from medtune.trainables.loop import Precision, predict_proba, train_one_epoch
from medtune.trainables.metrics import classification_metrics
from medtune.trainables.models import TransferModel
from medtune.trainables.multilabel import absent_findings, label_aucs
from medtune.trainables.ordinal import ordinal_metrics
from medtune.trainables.reporters import Reporter, TuneReporter

# The pieces other modules and tests import from here, where they lived before the split.
__all__ = [
    "CHECKPOINTS_PER_TRIAL", "FoldRun", "TrainingOutcome", "build_fold_run", "build_lr_schedule",
    "build_optimizer", "build_trial_model", "catch_up", "checkpoint_due", "checkpoint_model_state", "class_weights",
    "cuda_rng_state", "effective_pretrained", "fold_metrics", "fold_splits", "folds_in_epoch", "input_channels",
    "load_checkpoint", "make_batches", "mean_over_folds", "pick_device", "planned_epochs", "restore_cuda_rng",
    "run_training", "save_checkpoint", "seed_everything", "tune_trainable",
]

log = logging.getLogger(__name__)


@dataclass
class TrainingOutcome:
    """What a finished run leaves behind for the caller (the final run reuses the model)."""

    config: TrialConfig
    model: TransferModel
    data: DatasetSplits
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 1
    epochs: int = 0
    #: Cross-validated runs: every fold's model, and the last epoch's class probabilities of each
    #: image of train + val from the fold that held it out (out-of-fold predictions).
    fold_models: list[TransferModel] = field(default_factory=list)
    oof_probs: np.ndarray | None = None
    oof_labels: np.ndarray | None = None


#: Ray logs one INFO line per checkpoint in every trial process ("Checkpoint successfully created
#: at ..."), relayed to the driver's console for the whole sweep; Tune's results list them anyway.
#: The logger is that of a private Ray module (``ray.train._internal.storage``, ``StorageContext``
#: on Ray 2.60.0) and Ray offers no public name or switch for it. It is named here, not in
#: ``medtune.search.run._ray_compat`` (the adapter for every other private part of Ray), because
#: trainables never import ``medtune.search``; a lookup by prefix would silence other loggers or
#: miss this one before Ray imports it. ``tests/search/run/test_ray_compat.py`` is its canary: it
#: fails, naming this constant, when the module or its message moves.
CHECKPOINT_CHATTER = "ray.train._internal.storage"


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one trial."""
    logging.getLogger(CHECKPOINT_CHATTER).setLevel(logging.WARNING)
    run_training(config, TuneReporter())


def planned_epochs(cfg: TrialConfig, train_images: int) -> int:
    """The epochs this run trains: ``epochs``, or the budget in steps/images for this data and batch."""
    if cfg.budget_unit == "epochs" or cfg.budget is None:
        return cfg.epochs
    return epochs_for_budget(cfg.budget_unit, cfg.budget, train_images, cfg.batch_size)


def _restored_runs(reporter: Reporter, fold_run: Any, cfg: TrialConfig) -> tuple[list[FoldRun], int]:
    """The fold runs of the checkpoint Tune hands back (with the random generators' state), and the
    epoch to continue at; no runs and epoch 1 for a fresh start."""
    runs: list[FoldRun] = []
    with reporter.restored_checkpoint() as folder:
        if folder is None:
            return runs, 1
        state = load_checkpoint(folder)
        for index, fold_state in enumerate(state.get("folds") or [state]):
            runs.append(fold_run(index))
            runs[-1].restore(fold_state)
        if state.get("torch_rng") is not None:
            torch.set_rng_state(state["torch_rng"])
        restore_cuda_rng(state.get("cuda_rng"))
        log.info("resuming %s from its checkpoint at epoch %d", cfg.architecture, int(state["epoch"]) + 1)
        return runs, int(state["epoch"]) + 1


def _train_folds(runs: list[FoldRun], epoch: int, precision: Precision, ordinal: bool = False,
                 findings: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One epoch of every fold run, then each one's validation pass: per-fold metrics and probabilities
    (``ordinal``: graded classes, whose metrics add ``val_qwk`` and ``val_mae``; ``findings``: the
    names of multi-label findings, whose metrics add each one's ``val_auc_<finding>``, and whose
    findings that a val split cannot score are returned as ``absent``)."""
    per_fold, losses, probs_of, seen, seconds = [], [], [], 0, 0.0
    absent: set[str] = set()
    for run in runs:
        started = time.perf_counter()
        run.train_batches.set_epoch(epoch)
        loss, n = train_one_epoch(run.model, run.train_batches, run.optimizer, run.criterion, precision)
        seconds += time.perf_counter() - started
        losses.append(loss)
        seen += n
        if run.lr_schedule is not None:
            run.lr_schedule.step()
        probs, labels = predict_proba(run.model, run.val_batches, precision)
        probs_of.append(probs)
        per_fold.append(classification_metrics(probs, labels, prefix="val_")
                        | (ordinal_metrics(probs, labels, prefix="val_") if ordinal else {})
                        | (label_aucs(probs, labels, findings, prefix="val_") if findings else {}))
        if findings:
            absent.update(absent_findings(labels, findings))
    return {"per_fold": per_fold, "losses": losses, "probs": probs_of, "seen": seen, "train_seconds": seconds,
            "absent": absent}


def _warn_absent(absent: set[str], warned: set[str], findings: tuple[str, ...]) -> None:
    """Name, once per trial, the findings a val split cannot score (no positive or no negative
    image): ``val_auc`` is the mean over the others, and their own AUCs are not reported."""
    new = absent - warned
    if new:
        warned.update(new)
        names = [name for name in findings if name in new]
        log.warning("val has no positive or no negative image of %s: left out of val_auc (the macro AUC over the "
                    "other findings) and not reported on their own", ", ".join(names))


def _report(reporter: Reporter, metrics: dict[str, Any], runs: list[FoldRun], cfg: TrialConfig, epoch: int,
            class_names: tuple[str, ...]) -> None:
    """Report the epoch with a checkpoint of every fold run."""
    folder = Path(tempfile.mkdtemp(prefix="medtune-ckpt-"))
    try:
        save_checkpoint(folder, runs=runs, epoch=epoch, cfg=cfg, metrics=metrics, class_names=class_names)
        reporter.report(metrics, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _out_of_fold(runs: list[FoldRun], probs: list[np.ndarray], data: DatasetSplits) -> tuple[np.ndarray, np.ndarray]:
    """Each image of train + val with the probabilities of the fold model that held it out."""
    pool_labels = np.concatenate([data.train.labels, data.val.labels]).astype(np.int64)
    oof = np.zeros((len(pool_labels), data.num_classes))
    for run, fold_probs in zip(runs, probs):
        oof[run.val_rows] = fold_probs
    return oof, pool_labels


def run_training(config: dict[str, Any] | TrialConfig, reporter: Reporter,
                 data: DatasetSplits | None = None) -> TrainingOutcome:
    """Train ``config`` for its budget, reporting every epoch to ``reporter``.

    ``data`` replaces the splits the config names (the final run trains on train + part of val
    and reports on the rest of val); the test split is never read here.
    """
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
    threads = reporter.cpus()
    if threads:
        torch.set_num_threads(threads)
    seed_everything(cfg.seed)
    device = pick_device()
    gpu_meter = EpochGpuMeter.for_device(device)  # per-epoch GPU memory and utilisation; nothing on the CPU
    configure_backends(cfg, device)  # cudnn.benchmark, once per trial on CUDA
    precision = precision_for(cfg, device)

    load_started = time.perf_counter()
    if data is None:
        data = load_splits(DataConfig.from_trial(cfg))
    data_load_seconds = time.perf_counter() - load_started  # decode on a node's first trial, a cache hit after
    cfg = with_data_channels(cfg, data.colour)  # colour data: auto is 3, in every checkpoint's config too
    pairs = fold_splits(cfg, data)
    train_images = min(len(train) for train, _, _ in pairs)
    epochs = planned_epochs(cfg, train_images)
    units_each = units_per_epoch(cfg.budget_unit if cfg.budget is not None else "epochs", train_images,
                                 cfg.batch_size)
    racing = bool(cfg.cv_folds) and cfg.cv_race_until is not None

    def fold_run(index: int) -> FoldRun:
        train, val, rows = pairs[index]
        return build_fold_run(cfg, train, val, rows, data.num_classes, epochs, device)

    runs, start_epoch = _restored_runs(reporter, fold_run, cfg)
    if not runs:
        runs = [fold_run(i) for i in range(folds_in_epoch(cfg, start_epoch, units_each))]
    outcome = TrainingOutcome(config=cfg, model=runs[0].model, data=data, start_epoch=start_epoch, epochs=epochs)
    steps_each = steps_per_epoch(train_images, cfg.batch_size)
    images_each = images_per_epoch(train_images, cfg.batch_size)
    probs: list[np.ndarray] = []
    checkpoint_interval = reporter.checkpoint_interval_s()
    last_checkpoint_at: float | None = None  # monotonic time of this process's last checkpoint
    warned: set[str] = set()  # multi-label findings already named as unscorable on val
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        gpu_meter.start_epoch()
        while len(runs) < folds_in_epoch(cfg, epoch, units_each):  # the race is over: the other folds join
            runs.append(fold_run(len(runs)))
            catch_up(runs[-1], epoch - 1, precision)
        lr = runs[0].optimizer.param_groups[0]["lr"]
        trained = _train_folds(runs, epoch, precision, ordinal=cfg.data_task == "ordinal",
                               findings=data.class_names if data.multilabel else None)
        _warn_absent(trained["absent"], warned, data.class_names)
        probs = trained["probs"]
        metrics: dict[str, Any] = fold_metrics(trained["per_fold"], cfg.cv_folds, racing)
        metrics.update(
            epoch=epoch,
            epochs_total=epochs,
            step=epoch * steps_each,
            images_seen=epoch * images_each,
            train_loss=float(np.mean(trained["losses"])),
            lr=lr,
            images_per_sec=trained["seen"] / trained["train_seconds"] if trained["train_seconds"] > 0 else float("nan"),
            epoch_seconds=time.perf_counter() - started,
            data_seconds=sum(run.train_batches.take_seconds() + run.val_batches.take_seconds() for run in runs),
        )
        metrics.update(gpu_meter.end_epoch())  # docs/gpu.md; absent on the CPU, never zero
        if cfg.cv_folds:
            metrics["cv_folds"] = cfg.cv_folds
        if epoch == start_epoch:  # before the first epoch this process loaded the data (decoded, or a cache hit)
            metrics["data_load_seconds"] = data_load_seconds
        outcome.history.append(metrics)
        since_last = None if last_checkpoint_at is None else time.monotonic() - last_checkpoint_at
        if checkpoint_due(epoch, epochs, since_last, checkpoint_interval):
            _report(reporter, metrics, runs, cfg, epoch, data.class_names)
            last_checkpoint_at = time.monotonic()
        else:
            reporter.report(metrics, None)
    if cfg.cv_folds:
        outcome.fold_models = [run.model for run in runs]
        if probs and len(runs) == len(pairs):
            outcome.oof_probs, outcome.oof_labels = _out_of_fold(runs, probs, data)
    return outcome
