"""Grad-CAM heat maps: where in the image the model looked for its positive-class score.

Grad-CAM (Selvaraju et al., 2017) weights the last convolutional feature map by the gradient of
the class score, averaged over space, and keeps the positive part. Every backbone in the registry
is a timm-style model with ``forward_features`` (the last feature map) and ``forward_head(...,
pre_logits=True)`` (pooling), so one implementation serves all of them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainables.models import TransferModel


def gradcam(model: TransferModel, images: torch.Tensor, target_class: int) -> np.ndarray:
    """(N, H, W) heat maps in [0, 1] at the input's resolution, for ``target_class``."""
    model.eval()
    with torch.enable_grad():
        x = images.detach().clone().requires_grad_(False)
        features = model.backbone.forward_features(x)
        if features.dim() != 4:
            raise ValueError(f"{type(model.backbone).__name__}: expected a (N, C, H, W) feature map, got {tuple(features.shape)}")
        features.retain_grad()
        logits = model.head(model.backbone.forward_head(features, pre_logits=True))
        logits[:, target_class].sum().backward()
    weights = features.grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).detach().cpu().numpy()


def pick_examples(scores: np.ndarray, labels: np.ndarray, threshold: float, per_group: int,
                  class_names: tuple[str, ...] = ("negative", "positive")) -> list[tuple[int, str]]:
    """A fixed sample of test images: for each class, correct and wrong predictions (most confident
    first), captioned with the data's own class names."""
    predicted = (scores >= threshold).astype(int)
    chosen: list[tuple[int, str]] = []
    for cls in (0, 1):
        for correct in (True, False):
            idx = np.flatnonzero((labels == cls) & ((predicted == labels) == correct))
            confidence = np.abs(scores[idx] - threshold)
            for i in idx[np.argsort(-confidence, kind="stable")][:per_group]:
                chosen.append((int(i), f"{class_names[-1] if cls else class_names[0]}, {'correct' if correct else 'wrong'}"))
    return chosen
