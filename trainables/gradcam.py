"""Grad-CAM heat maps: where in the image the model looked for its positive-class score.

Grad-CAM (Selvaraju et al., 2017) weights a convolutional feature map by the gradient of the class
score, averaged over space, sums over channels and keeps the positive part. The paper uses the
last feature map, the best trade-off between class-specific meaning and spatial detail *at 224 px*,
where that map is 7x7. medtune trains at MedMNIST sizes (28 to 224 px), and at 28 px the last map
of MobileNetV2/EfficientNet/ResNet/DenseNet is 1x1: its Grad-CAM is one number, which bilinear
upsampling turns into a flat tint. So the map is taken elsewhere:

**Rule.** Among the backbone's stages (the modules named by timm's ``feature_info``, the same taps
that define ``frozen_depth``; ``simple_cnn`` declares its three blocks there too), take the
*deepest* one whose output has at least ``min_cells`` cells along each side, default
``MIN_CELLS = 7``:

* deepest, because deeper stages are more class-specific (the paper's reason for the last layer);
* 7x7, because that is the grid Grad-CAM was designed and validated on (the last map of these
  ImageNet CNNs at 224 px). A 4x4 or 2x2 grid puts one cell over a quarter of a lung field and
  cannot say which part of the image mattered; at 224 px the rule picks the last stage, as the
  paper does.

At 28 px this is stage 2 of 5 (7x7) for MobileNetV2, EfficientNet-Lite and ResNet, stage 2 of 3
(7x7) for ``simple_cnn``; DenseNet-121 (29 px, its minimum) gets its 8x8 stage 2, InceptionV3
(upsampled to 75 px) its 7x7 ``Mixed_5d``.

**When no stage is large enough** (inputs below ~14 px: ``simple_cnn`` at 8 px, ResNet at 1 px),
the *shallowest* stage, the finest grid the model has, is used as it is. The input is not
upsampled for the map: a larger input changes the prediction being explained (other receptive
fields, other BatchNorm statistics), and the map must explain the score shown next to it.
``CamLayer.enough_cells`` says when this happened, and the figure names the stage and its size.

Mechanics: forward hooks on every tap record its output and hand a copy on downstream, so the
gradient of the target logit with respect to the recorded tensor is well defined even when a later
layer works in place; ``torch.autograd.grad`` takes it without touching any parameter's ``.grad``.
The input requires grad so that a fully frozen backbone still passes gradients to its stages.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medtune.trainables.models import TransferModel
from medtune.trainables.models.freezing import feature_taps, plan_stages

__all__ = ["MIN_CELLS", "CamLayer", "choose_layer", "gradcam", "gradcam_with_layer", "pick_examples"]

#: The smallest grid (cells per side) worth a heat map; see the module docstring for why 7.
MIN_CELLS = 7


@dataclass(frozen=True)
class CamLayer:
    """The feature map a Grad-CAM was taken from, for the figure's note and for tests."""

    module: str  # the backbone module (a feature_info tap)
    stage: int  # 1-based stage, numbered as frozen_depth numbers them
    num_stages: int
    grid: tuple[int, int]  # (H, W) cells of the map
    input_size: tuple[int, int]  # (H, W) of the images it was computed on
    enough_cells: bool  # False: no stage had min_cells per side, the finest was used

    def describe(self) -> str:
        """One line for a figure: which map, how fine, at what input."""
        text = (f"stage {self.stage} of {self.num_stages} ({self.module}), {self.grid[0]}x{self.grid[1]} cells "
                f"at {self.input_size[0]}x{self.input_size[1]} px input")
        if not self.enough_cells:
            text += " (no stage had enough cells; the finest is shown)"
        return text


def choose_layer(grids: list[tuple[int, int]], min_cells: int = MIN_CELLS) -> tuple[int, bool]:
    """Index of the deepest grid with ``min_cells`` per side, else of the finest (first); and whether
    the minimum was met. ``grids`` are the taps' (H, W) in depth order."""
    if not grids:
        raise ValueError("no feature maps to choose from")
    for i in range(len(grids) - 1, -1, -1):
        if min(grids[i]) >= min_cells:
            return i, True
    return 0, False


@contextmanager
def _recording(backbone: nn.Module, taps: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each tap's output during a forward pass; downstream layers get a copy (see docstring)."""
    outputs: dict[str, torch.Tensor] = {}

    def hook_for(name: str):  # noqa: ANN202 (a forward hook)
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor | None:
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                return None
            outputs[name] = output
            return output.clone()
        return hook

    handles = [backbone.get_submodule(name).register_forward_hook(hook_for(name)) for name in taps]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _stage_numbers(model: TransferModel, taps: list[str]) -> tuple[dict[str, int], int]:
    """Tap -> stage as ``frozen_depth`` counts them (vgg16_bn's last max pool joins stage 5)."""
    plan = getattr(model, "_plan", None) or plan_stages(model.backbone)
    return {t: plan.module_stage.get(t, i + 1) for i, t in enumerate(taps)}, plan.num_stages


def _cam_from(activation: torch.Tensor, grad: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Grad-CAM proper: channel weights = mean gradient; ReLU; bilinear to ``size``; each map / its max."""
    weights = grad.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.float()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).clamp(0.0, 1.0)


def gradcam_with_layer(model: TransferModel, images: torch.Tensor, target_class: int,
                       min_cells: int = MIN_CELLS) -> tuple[np.ndarray, CamLayer]:
    """(N, H, W) heat maps in [0, 1] at the input's resolution for ``target_class``, and the map used.

    An image whose map is zero everywhere (no positive evidence at that stage) gets all zeros.
    """
    taps = feature_taps(model.backbone)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), _recording(model.backbone, taps) as outputs:
            x = images.detach().clone().requires_grad_(True)
            logits = model(x)
            present = [t for t in taps if t in outputs]
            if not present:
                raise ValueError(f"{type(model.backbone).__name__}: no feature_info stage gave an (N, C, H, W) map")
            index, enough = choose_layer([tuple(outputs[t].shape[-2:]) for t in present], min_cells)
            activation = outputs[present[index]]
            (grad,) = torch.autograd.grad(logits[:, target_class].sum(), activation)
    finally:
        model.train(was_training)
    size = (int(images.shape[-2]), int(images.shape[-1]))
    cam = _cam_from(activation.detach(), grad.detach(), size)
    stages, num_stages = _stage_numbers(model, taps)
    name = present[index]
    layer = CamLayer(module=name, stage=stages[name], num_stages=num_stages,
                     grid=(int(activation.shape[-2]), int(activation.shape[-1])), input_size=size,
                     enough_cells=enough)
    return cam.cpu().numpy().astype(np.float32), layer


def gradcam(model: TransferModel, images: torch.Tensor, target_class: int, min_cells: int = MIN_CELLS) -> np.ndarray:
    """(N, H, W) heat maps in [0, 1] at the input's resolution, for ``target_class`` (rule: module docstring)."""
    return gradcam_with_layer(model, images, target_class, min_cells)[0]


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
                chosen.append((int(i), f"{class_names[-1] if cls else class_names[0]}, "
                                       f"{'correct' if correct else 'wrong'}"))
    return chosen
