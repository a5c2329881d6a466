"""The training function: one trial of a sweep, and also the final training run.

``tune_trainable`` is what Ray Tune runs; ``run_training`` is the same loop without Ray (the final
run and the tests use it through ``LocalReporter``). It builds data and model from the trial's
config through the factories in ``medtune.trainables.data`` and ``medtune.trainables.models``, trains epoch by
epoch and reports, after every epoch, the validation metrics plus a checkpoint (model, optimizer,
LR schedule, epoch, config). When Tune restarts a trial it hands the last checkpoint back and the
loop continues at the next epoch.

Two settings change what one trial trains:

* ``budget_unit``/``budget``: the budget in optimizer steps or images seen
  (``medtune.trainables.budget``); the trial turns it into epochs for its own data and batch size and
  reports the counters (``step``, ``images_seen``) that ASHA's rungs read.
* ``cv_folds``: k-fold cross-validation over train + val for small data sets, where choosing among
  many configurations by a few dozen validation images would reward noise. The k fold models train
  in lockstep, epoch by epoch, and every report carries the mean over folds (what ASHA cuts on and
  Optuna is told) with its standard error (``val_auc_sem``).
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtune.trainables.budget import epochs_for_budget, images_per_epoch, steps_per_epoch
from medtune.trainables.config import TrialConfig
from medtune.trainables.data import AugmentConfig, BatchIterator, DataConfig, DatasetSplits, SplitArrays, load_splits
from medtune.trainables.data.splits import kfold_pairs, pooled
from medtune.trainables.loop import Precision, TimedBatches, predict_proba, train_one_epoch
from medtune.trainables.metrics import classification_metrics
from medtune.trainables.models import TransferModel, build_model, get_architecture, resolve_frozen_depth
from medtune.trainables.reporters import CHECKPOINT_FILE, Reporter, TuneReporter

log = logging.getLogger(__name__)

#: Evaluation batches are larger than training ones: no gradients, so memory allows it.
EVAL_BATCH_SIZE = 256
#: A long epoch plan (a step budget on a small data set) checkpoints about this often per trial,
#: plus its last epoch; short plans checkpoint every epoch, as Tune's resume expects.
CHECKPOINTS_PER_TRIAL = 20


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
CHECKPOINT_CHATTER = "ray.train._internal.storage"


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one trial."""
    logging.getLogger(CHECKPOINT_CHATTER).setLevel(logging.WARNING)
    run_training(config, TuneReporter())


def effective_pretrained(cfg: TrialConfig) -> str:
    """``imagenet`` means "ImageNet weights where the architecture has any": the plain CNN has none."""
    info = get_architecture(cfg.architecture)
    if cfg.pretrained == "imagenet" and not info.has_imagenet_weights:
        return "none"
    return cfg.pretrained


def input_channels(cfg: TrialConfig) -> int:
    """Gray X-rays are repeated to three channels for pretrained RGB stems, kept as one otherwise."""
    if cfg.channels != "auto":
        return int(cfg.channels)
    return 1 if effective_pretrained(cfg) == "none" else 3


def pick_device() -> torch.device:
    # Ray hides GPUs a trial was not given (CUDA_VISIBLE_DEVICES), so availability is the answer.
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (N / (K * n_k)): the minority NORMAL class counts as much as PNEUMONIA."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def make_batches(cfg: TrialConfig, split: SplitArrays, *, train: bool, device: torch.device) -> BatchIterator:
    """Batches shaped for the model: channels, minimum input size, normalisation, augmentation."""
    info = get_architecture(cfg.architecture)
    input_size = info.min_input_size if cfg.image_size < info.min_input_size else None
    augment = AugmentConfig(rotation=cfg.augment_rotation, shift=cfg.augment_shift,
                            scale=cfg.augment_scale, hflip=cfg.augment_hflip)
    return BatchIterator(
        split,
        cfg.batch_size if train else max(cfg.batch_size, EVAL_BATCH_SIZE),
        shuffle=train,
        seed=cfg.seed,
        device=device,
        channels=input_channels(cfg),
        input_size=input_size,
        mean=info.mean,
        std=info.std,
        augment=augment if train else None,
        channels_last=cfg.channels_last,
        # A last batch of one image breaks BatchNorm in train mode.
        drop_last=train and len(split.labels) > cfg.batch_size,
    )


def build_optimizer(cfg: TrialConfig, model: TransferModel) -> torch.optim.Optimizer:
    params = model.trainable_parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_lr_schedule(cfg: TrialConfig, optimizer: torch.optim.Optimizer,
                      epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def planned_epochs(cfg: TrialConfig, train_images: int) -> int:
    """The epochs this run trains: ``epochs``, or the budget in steps/images for this data and batch."""
    if cfg.budget_unit == "epochs" or cfg.budget is None:
        return cfg.epochs
    return epochs_for_budget(cfg.budget_unit, cfg.budget, train_images, cfg.batch_size)


def fold_splits(cfg: TrialConfig, data: DatasetSplits) -> list[tuple[SplitArrays, SplitArrays, np.ndarray | None]]:
    """(train, val, val rows of the pool) per model: one pair, or the folds of train + val."""
    if not cfg.cv_folds:
        return [(data.train, data.val, None)]
    return list(kfold_pairs(pooled(data.train, data.val), cfg.cv_folds, cfg.data_split_seed))


def build_trial_model(cfg: TrialConfig, num_classes: int) -> TransferModel:
    return build_model(
        cfg.architecture,
        num_classes=num_classes,
        in_chans=input_channels(cfg),
        dropout=cfg.dropout,
        frozen_depth=resolve_frozen_depth(cfg.architecture, cfg.frozen_depth, cfg.frozen_fraction),
        pretrained=effective_pretrained(cfg),
        weights_dir=cfg.weights_dir,
    )


def save_checkpoint(folder: Path, *, runs: list["FoldRun"], epoch: int, cfg: TrialConfig,
                    metrics: dict[str, Any], class_names: tuple[str, ...]) -> None:
    """Plain tensors and primitives only, so ``torch.load(weights_only=True)`` reads it back.

    One model: ``model``/``optimizer``/``lr_schedule`` at the top level. Cross-validated: a
    ``folds`` list of those, one per fold.
    """
    states = [run.state() for run in runs]
    state: dict[str, Any] = states[0] if len(states) == 1 else {"folds": states}
    torch.save(
        {
            **state,
            "epoch": epoch,
            "config": cfg.to_dict(),
            "metrics": metrics,
            "class_names": list(class_names),
            # Dropout draws from the global generators: restoring them makes a resumed run match an
            # uninterrupted one exactly, on the CPU and (with every GPU's generator) on CUDA.
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": cuda_rng_state(),
        },
        folder / CHECKPOINT_FILE,
    )


def cuda_rng_state() -> list[torch.Tensor] | None:
    """Every visible GPU's random generator state (None without CUDA)."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def restore_cuda_rng(states: list[torch.Tensor] | None) -> None:
    if states is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states)


def load_checkpoint(folder: str | Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling code."""
    return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def checkpoint_model_state(state: dict[str, Any]) -> dict[str, Any]:
    """The model weights of a checkpoint (a cross-validated one: its first fold's)."""
    return state["model"] if "model" in state else state["folds"][0]["model"]


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
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_schedule is not None and state.get("lr_schedule") is not None:
            self.lr_schedule.load_state_dict(state["lr_schedule"])


def build_fold_run(cfg: TrialConfig, train: SplitArrays, val: SplitArrays, val_rows: np.ndarray | None,
                   num_classes: int, epochs: int, device: torch.device) -> FoldRun:
    model = build_trial_model(cfg, num_classes).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)
    weight = class_weights(train.labels, num_classes).to(device) if cfg.class_weighted else None
    return FoldRun(model=model, optimizer=optimizer, lr_schedule=build_lr_schedule(cfg, optimizer, epochs),
                   criterion=nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing),
                   train_batches=TimedBatches(make_batches(cfg, train, train=True, device=device)),
                   val_batches=TimedBatches(make_batches(cfg, val, train=False, device=device)),
                   val_rows=val_rows)


def mean_over_folds(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over folds, and for k > 1 its standard error as ``<name>_sem``."""
    if len(per_fold) == 1:
        return dict(per_fold[0])
    out: dict[str, float] = {}
    for key in per_fold[0]:
        values = np.array([m[key] for m in per_fold], dtype=np.float64)
        out[key] = float(np.nanmean(values))
        finite = values[np.isfinite(values)]
        out[f"{key}_sem"] = float(finite.std(ddof=1) / np.sqrt(len(finite))) if len(finite) > 1 else float("nan")
    return out


def checkpoint_due(epoch: int, epochs: int, since_last_s: float | None = None, interval_s: float = 0.0) -> bool:
    """Every epoch of a short plan; about ``CHECKPOINTS_PER_TRIAL`` of a long one, and its last.

    Between the first and the last, at least ``interval_s`` after this process's previous
    checkpoint (``since_last_s``; ``None``: there was none): with short epochs a checkpoint every
    epoch makes Tune snapshot the whole experiment several times a second (``TuneReporter``). The
    first is kept so that a trial ASHA stops at its first rung still leaves one, the last so that
    a finished trial's final weights are there to be its best checkpoint.
    """
    every = max(1, -(-epochs // CHECKPOINTS_PER_TRIAL))
    if epoch >= epochs:
        return True
    return epoch % every == 0 and (since_last_s is None or since_last_s >= interval_s)


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
    precision = Precision.for_device(device, cfg.amp)

    load_started = time.perf_counter()
    if data is None:
        data = load_splits(DataConfig.from_trial(cfg))
    data_load_seconds = time.perf_counter() - load_started  # decode on a node's first trial, a cache hit after
    pairs = fold_splits(cfg, data)
    train_images = min(len(train) for train, _, _ in pairs)
    epochs = planned_epochs(cfg, train_images)
    runs = [build_fold_run(cfg, train, val, rows, data.num_classes, epochs, device) for train, val, rows in pairs]

    start_epoch = 1
    with reporter.restored_checkpoint() as folder:
        if folder is not None:
            state = load_checkpoint(folder)
            for run, fold_state in zip(runs, state.get("folds") or [state]):
                run.restore(fold_state)
            if state.get("torch_rng") is not None:
                torch.set_rng_state(state["torch_rng"])
            restore_cuda_rng(state.get("cuda_rng"))
            start_epoch = int(state["epoch"]) + 1
            log.info("resuming %s from its checkpoint at epoch %d", cfg.architecture, start_epoch)

    outcome = TrainingOutcome(config=cfg, model=runs[0].model, data=data, start_epoch=start_epoch, epochs=epochs,
                              fold_models=[run.model for run in runs] if cfg.cv_folds else [])
    steps_each = steps_per_epoch(train_images, cfg.batch_size)
    images_each = images_per_epoch(train_images, cfg.batch_size)
    fold_probs: list[np.ndarray] = []
    checkpoint_interval = reporter.checkpoint_interval_s()
    last_checkpoint_at: float | None = None  # monotonic time of this process's last checkpoint
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        lr = runs[0].optimizer.param_groups[0]["lr"]
        per_fold, losses, seen, train_seconds, fold_probs = [], [], 0, 0.0, []
        for run in runs:
            fold_started = time.perf_counter()
            run.train_batches.set_epoch(epoch)
            loss, n = train_one_epoch(run.model, run.train_batches, run.optimizer, run.criterion, precision)
            train_seconds += time.perf_counter() - fold_started
            losses.append(loss)
            seen += n
            if run.lr_schedule is not None:
                run.lr_schedule.step()
            probs, labels = predict_proba(run.model, run.val_batches, precision)
            fold_probs.append(probs)
            per_fold.append(classification_metrics(probs, labels, prefix="val_"))
        metrics: dict[str, Any] = mean_over_folds(per_fold)
        metrics.update(
            epoch=epoch,
            epochs_total=epochs,
            step=epoch * steps_each,
            images_seen=epoch * images_each,
            train_loss=float(np.mean(losses)),
            lr=lr,
            images_per_sec=seen / train_seconds if train_seconds > 0 else float("nan"),
            epoch_seconds=time.perf_counter() - started,
            data_seconds=sum(run.train_batches.take_seconds() + run.val_batches.take_seconds() for run in runs),
        )
        if cfg.cv_folds:
            metrics["cv_folds"] = cfg.cv_folds
        if epoch == start_epoch:  # before the first epoch this process loaded the data (decoded, or a cache hit)
            metrics["data_load_seconds"] = data_load_seconds
        outcome.history.append(metrics)
        since_last = None if last_checkpoint_at is None else time.monotonic() - last_checkpoint_at
        if not checkpoint_due(epoch, epochs, since_last, checkpoint_interval):
            reporter.report(metrics, None)
            continue
        folder = Path(tempfile.mkdtemp(prefix="medtune-ckpt-"))
        try:
            save_checkpoint(folder, runs=runs, epoch=epoch, cfg=cfg, metrics=metrics, class_names=data.class_names)
            reporter.report(metrics, folder)
            last_checkpoint_at = time.monotonic()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if cfg.cv_folds and fold_probs:
        pool_labels = np.concatenate([data.train.labels, data.val.labels]).astype(np.int64)
        oof = np.zeros((len(pool_labels), data.num_classes))
        for run, probs in zip(runs, fold_probs):
            oof[run.val_rows] = probs
        outcome.oof_probs, outcome.oof_labels = oof, pool_labels
    return outcome
