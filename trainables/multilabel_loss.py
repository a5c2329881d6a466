"""The loss of a sigmoid head (multi-label findings, ``medtune.trainables.multilabel``).

A separate module because ``multilabel.py`` stays free of torch (the final report imports it).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medtune.trainables.multilabel import pos_weight


class MultiLabelBCE(nn.Module):
    """Binary cross-entropy with logits over L findings: the labels arrive as the (B, L) int64 0/1
    findings the batches carry and are cast here. ``label_smoothing`` pulls each target towards 0.5,
    as cross-entropy's pulls towards the uniform class distribution; ``pos_weight`` weighs each
    finding's positives (``class_weighted``)."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.loss = nn.BCEWithLogitsLoss(pos_weight=weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = labels.to(logits.dtype)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return self.loss(logits.float(), targets.float())


def multilabel_criterion(train_labels: np.ndarray, class_weighted: bool, label_smoothing: float,
                         device: torch.device) -> MultiLabelBCE:
    """The loss of one fold model: ``pos_weight`` from its own training labels when ``class_weighted``."""
    weight = (torch.tensor(pos_weight(train_labels), dtype=torch.float32, device=device) if class_weighted
              else None)
    return MultiLabelBCE(weight, label_smoothing)
