"""What a trial builds from its config: the device, the model, the batches, the optimizer and its schedule.

Shared by the training function (``medtune.trainables.train``), the scoring of a saved model
(``medtune.trainables.evaluate``) and the driver's Grad-CAM and model export, so a model is always
built and fed the way it trained. The settings that depend on the device (memory layout, autocast
dtype, eval batch) are read through ``medtune.trainables.device_defaults.resolved``, never off the
config directly, so ``auto`` means the same everywhere.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch

from medtune.trainables.config import TrialConfig
from medtune.trainables.data import AugmentConfig, BatchIterator, SplitArrays
from medtune.trainables.device_defaults import resolved
from medtune.trainables.loop import Precision
from medtune.trainables.models import TransferModel, build_model, get_architecture, resolve_frozen_depth


def effective_pretrained(cfg: TrialConfig) -> str:
    """``imagenet`` means "ImageNet weights where the architecture has any": the plain CNN has none."""
    info = get_architecture(cfg.architecture)
    if cfg.pretrained == "imagenet" and not info.has_imagenet_weights:
        return "none"
    return cfg.pretrained


def input_channels(cfg: TrialConfig, colour: bool = False) -> int:
    """The channels the model's stem takes. ``auto``: colour data keeps its three; grey X-rays are
    repeated to three channels for pretrained RGB stems and kept as one otherwise. An explicit 1 reads
    colour data as grey (luma), an explicit 3 repeats grey data."""
    if cfg.channels != "auto":
        return int(cfg.channels)
    if colour:
        return 3
    return 1 if effective_pretrained(cfg) == "none" else 3


def with_data_channels(cfg: TrialConfig, colour: bool) -> TrialConfig:
    """``cfg`` with ``channels: auto`` pinned to 3 when the data is colour, so that a checkpoint or a
    model bundle, which keep the config but not the data, rebuild the stem the model trained with.
    Grey data: ``cfg`` itself, unchanged."""
    if colour and cfg.channels == "auto":
        return dataclasses.replace(cfg, channels=3)
    return cfg


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


def precision_for(cfg: TrialConfig, device: torch.device) -> Precision:
    """How ``cfg``'s model runs on ``device``: its ``amp``/``amp_dtype`` resolved for the device."""
    return Precision.for_dtype(device, resolved(cfg, device).amp_dtype)


def make_batches(cfg: TrialConfig, split: SplitArrays, *, train: bool, device: torch.device) -> BatchIterator:
    """Batches shaped for the model: channels, minimum input size, normalisation, augmentation, and the
    memory layout and eval batch size resolved for ``device`` (``device_defaults``)."""
    info = get_architecture(cfg.architecture)
    settings = resolved(cfg, device)
    input_size = info.min_input_size if cfg.image_size < info.min_input_size else None
    augment = AugmentConfig(rotation=cfg.augment_rotation, shift=cfg.augment_shift,
                            scale=cfg.augment_scale, hflip=cfg.augment_hflip)
    return BatchIterator(
        split,
        cfg.batch_size if train else settings.eval_batch_size,
        shuffle=train,
        seed=cfg.seed,
        device=device,
        channels=input_channels(cfg, colour=split.channels == 3),
        input_size=input_size,
        mean=info.mean,
        std=info.std,
        augment=augment if train else None,
        channels_last=settings.channels_last,
        # A last batch of one image breaks BatchNorm in train mode.
        drop_last=train and len(split.labels) > cfg.batch_size,
    )


def fused_on(params: list[torch.nn.Parameter]) -> bool | None:
    """``fused=True`` where every parameter is on CUDA: one kernel per step instead of a few per tensor,
    and with a float16 scaler the inf check stays on the GPU (an unfused step reads it back every
    step). None (torch's default) elsewhere: the CPU keeps the optimizer it always had."""
    return True if params and all(p.device.type == "cuda" for p in params) else None


def build_optimizer(cfg: TrialConfig, model: TransferModel) -> torch.optim.Optimizer:
    """The trial's optimizer over the model's trainable parameters; call it after moving the model to its device."""
    params = list(model.trainable_parameters())
    fused = fused_on(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True,
                               fused=fused)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def build_lr_schedule(cfg: TrialConfig, optimizer: torch.optim.Optimizer,
                      epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
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
