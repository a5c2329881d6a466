"""The training function: one trial of a sweep, and also the final training run.

``tune_trainable`` is what Ray Tune runs; ``run_training`` is the same loop without Ray (the final
run and the tests use it through ``LocalReporter``). It builds data and model from the trial's
config through the factories in ``trainables.data`` and ``trainables.models``, trains epoch by
epoch and reports, after every epoch, the validation metrics plus a checkpoint (model, optimizer,
LR schedule, epoch, config). When Tune restarts a trial it hands the last checkpoint back and the
loop continues at the next epoch.
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

from trainables.config import TrialConfig
from trainables.data import AugmentConfig, BatchIterator, DataConfig, DatasetSplits, SplitArrays, load_splits
from trainables.loop import Precision, TimedBatches, predict_proba, train_one_epoch
from trainables.metrics import classification_metrics
from trainables.models import TransferModel, build_model, get_architecture, resolve_frozen_depth
from trainables.reporting import CHECKPOINT_FILE, Reporter, TuneReporter

log = logging.getLogger(__name__)

#: Evaluation batches are larger than training ones: no gradients, so memory allows it.
EVAL_BATCH_SIZE = 256


@dataclass
class TrainingOutcome:
    """What a finished run leaves behind for the caller (the final run reuses the model)."""

    config: TrialConfig
    model: TransferModel
    data: DatasetSplits
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 1


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one trial."""
    run_training(config, TuneReporter())


def data_config(cfg: TrialConfig) -> DataConfig:
    """The data factory's view of a trial config."""
    return DataConfig(
        source=cfg.data_source,
        image_size=cfg.image_size,
        val_fraction=cfg.data_val_fraction,
        split_seed=cfg.data_split_seed,
        train_subset=cfg.data_train_subset,
        val_subset=cfg.data_val_subset,
        max_bad_fraction=cfg.data_max_bad_fraction,
        data_dir=cfg.data_dir,
        cache_dir=cfg.cache_dir,
    )


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


def build_lr_schedule(cfg: TrialConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return None


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


def save_checkpoint(folder: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    lr_schedule: Any, epoch: int, cfg: TrialConfig, metrics: dict[str, Any],
                    class_names: tuple[str, ...]) -> None:
    """Plain tensors and primitives only, so ``torch.load(weights_only=True)`` reads it back."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "lr_schedule": lr_schedule.state_dict() if lr_schedule is not None else None,
            "epoch": epoch,
            "config": cfg.to_dict(),
            "metrics": metrics,
            "class_names": list(class_names),
            # Dropout draws from the global generator: restoring it makes a resumed run match an
            # uninterrupted one exactly on the CPU.
            "torch_rng": torch.get_rng_state(),
        },
        folder / CHECKPOINT_FILE,
    )


def load_checkpoint(folder: str | Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling code."""
    return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def run_training(config: dict[str, Any] | TrialConfig, reporter: Reporter,
                 data: DatasetSplits | None = None) -> TrainingOutcome:
    """Train ``config`` for its epoch budget, reporting every epoch to ``reporter``.

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
        data = load_splits(data_config(cfg))
    data_load_seconds = time.perf_counter() - load_started  # decode on a node's first trial, a cache hit after
    model = build_trial_model(cfg, data.num_classes).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)
    lr_schedule = build_lr_schedule(cfg, optimizer)
    weight = class_weights(data.train.labels, data.num_classes).to(device) if cfg.class_weighted else None
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)

    start_epoch = 1
    with reporter.restored_checkpoint() as folder:
        if folder is not None:
            state = load_checkpoint(folder)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if lr_schedule is not None and state["lr_schedule"] is not None:
                lr_schedule.load_state_dict(state["lr_schedule"])
            if state.get("torch_rng") is not None:
                torch.set_rng_state(state["torch_rng"])
            start_epoch = int(state["epoch"]) + 1
            log.info("resuming %s from its checkpoint at epoch %d", cfg.architecture, start_epoch)

    train_batches = TimedBatches(make_batches(cfg, data.train, train=True, device=device))
    val_batches = TimedBatches(make_batches(cfg, data.val, train=False, device=device))
    outcome = TrainingOutcome(config=cfg, model=model, data=data, start_epoch=start_epoch)

    for epoch in range(start_epoch, cfg.epochs + 1):
        started = time.perf_counter()
        train_batches.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        train_loss, seen = train_one_epoch(model, train_batches, optimizer, criterion, precision)
        train_seconds = time.perf_counter() - started
        if lr_schedule is not None:
            lr_schedule.step()
        probs, labels = predict_proba(model, val_batches, precision)
        metrics: dict[str, Any] = classification_metrics(probs, labels, prefix="val_")
        metrics.update(
            epoch=epoch,
            train_loss=train_loss,
            lr=lr,
            images_per_sec=seen / train_seconds if train_seconds > 0 else float("nan"),
            epoch_seconds=time.perf_counter() - started,
            data_seconds=train_batches.take_seconds() + val_batches.take_seconds(),  # waiting for batches
        )
        if epoch == start_epoch:  # before the first epoch this process loaded the data (decoded, or a cache hit)
            metrics["data_load_seconds"] = data_load_seconds
        folder = Path(tempfile.mkdtemp(prefix="medtune-ckpt-"))
        try:
            save_checkpoint(folder, model=model, optimizer=optimizer, lr_schedule=lr_schedule, epoch=epoch,
                            cfg=cfg, metrics=metrics, class_names=data.class_names)
            outcome.history.append(metrics)
            reporter.report(metrics, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return outcome
