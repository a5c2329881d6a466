"""Scoring a trained model or a saved checkpoint on one split (the held-out test split, usually).

Kept apart from the training loop on purpose: a sweep never calls this on the test split. The
final run, the transfer test and the objective benchmark do, through the same batching and
inference code the trials use for validation, so test numbers are computed the way val numbers are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtune.trainables.checkpoints import checkpoint_model_state, load_checkpoint
from medtune.trainables.config import TrialConfig
from medtune.trainables.data import SplitArrays
from medtune.trainables.factories import make_batches, pick_device, precision_for
from medtune.trainables.loop import predict_proba
from medtune.trainables.metrics import classification_metrics
from medtune.trainables.model_bundle import rebuild_model
from medtune.trainables.models import TransferModel


def predict_split(model: TransferModel, cfg: TrialConfig, split: SplitArrays,
                  device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and labels for every image of ``split``, preprocessed as ``cfg`` trains."""
    device = device or next(model.parameters()).device
    batches = make_batches(cfg, split, train=False, device=device)
    return predict_proba(model, batches, precision_for(cfg, device))


def model_from_checkpoint(checkpoint_dir: str | Path,
                          num_classes: int | None = None) -> tuple[TransferModel, TrialConfig]:
    """Rebuild a trial's model from its checkpoint folder, without pretrained downloads.

    The checkpoint holds every weight, so the architecture is built from random init
    (``pretrained: none``) and then overwritten: scoring never needs the network or a weights dir.
    """
    state = load_checkpoint(checkpoint_dir)
    trained = TrialConfig.from_dict(state["config"])
    classes = num_classes if num_classes is not None else len(state["class_names"])
    # Same stem as in training (pretrained runs see three channels), without fetching weights.
    model = rebuild_model(state["config"], classes, checkpoint_model_state(state))
    return model.to(pick_device()).eval(), trained


def evaluate_checkpoint(checkpoint_dir: str | Path, split: SplitArrays, prefix: str = "test_") -> dict[str, Any]:
    """Metrics of a saved checkpoint on ``split`` (names as the trials report them, with ``prefix``)."""
    model, cfg = model_from_checkpoint(checkpoint_dir)
    probs, labels = predict_split(model, cfg, split)
    return classification_metrics(probs, labels, prefix=prefix)
