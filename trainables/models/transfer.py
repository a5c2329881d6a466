"""``build_model``: a timm backbone plus medtune's dropout+linear head, with the first k stages frozen."""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from .freezing import StagePlan, apply_frozen_depth, frozen_modules, plan_stages, resolve_frozen_depth
from .registry import ArchitectureInfo, get_architecture
from .weights import (
    WEIGHTS_DIR_ENV,
    WeightsUnavailableError,
    find_local_weights,
    load_backbone_weights,
    resolve_weights_dir,
)

__all__ = ["TransferModel", "build_model"]


class TransferModel(nn.Module):
    """Backbone (pooled features) -> Dropout -> Linear; frozen stages stay in eval mode.

    ``head`` is exactly ``nn.Sequential(nn.Dropout(p), nn.Linear(features, num_classes))`` and
    always trains. The feature width is timm's ``head_hidden_size`` where the model has one (it
    differs from ``num_features`` for vgg16_bn, whose pre_logits ConvMlp widens 512 -> 4096).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        info: ArchitectureInfo,
        num_classes: int,
        dropout: float,
        frozen_depth: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.info = info
        self.backbone = backbone
        features = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)
        self.head = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(features, num_classes))
        self._plan: StagePlan = plan_stages(backbone)
        if self._plan.num_stages != info.num_stages:
            raise RuntimeError(
                f"{info.name}: timm's feature_info gives {self._plan.num_stages} stages, the registry "
                f"declares {info.num_stages}; update trainables/models/registry.py for this timm version"
            )
        self.num_stages = info.num_stages
        self.frozen_depth = 0
        self._frozen_names: list[str] = []
        self.set_frozen_depth(frozen_depth)

    def set_frozen_depth(self, depth: int) -> None:
        """Freeze stages 1..depth and unfreeze the rest (also usable for gradual unfreezing)."""
        apply_frozen_depth(self.backbone, self._plan, depth)
        self.frozen_depth = depth
        names = {id(m): n for n, m in self.backbone.named_modules()}
        self._frozen_names = [names[id(m)] for m in frozen_modules(self.backbone, self._plan, depth)]
        self.train(self.training)

    def train(self, mode: bool = True) -> TransferModel:
        """Like ``nn.Module.train`` but frozen stages stay in eval (BatchNorm stats stay fixed)."""
        super().train(mode)
        if mode:
            for name in self._frozen_names:
                self.backbone.get_submodule(name).eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer should see: unfrozen backbone stages plus the head."""
        return [p for p in self.parameters() if p.requires_grad]

    def stage_of_parameters(self) -> dict[str, int]:
        """Backbone parameter name (as in ``backbone.named_parameters()``) -> stage 1..num_stages."""
        return dict(self._plan.param_stage)

    def extra_repr(self) -> str:
        return f"architecture={self.info.name}, frozen_depth={self.frozen_depth}/{self.num_stages}"


def _create(info: ArchitectureInfo, in_chans: int, **kwargs: object) -> nn.Module:
    # num_classes=0: timm removes its classifier and returns pooled features.
    return timm.create_model(info.timm_name, num_classes=0, in_chans=in_chans, **kwargs)


def _imagenet_backbone(info: ArchitectureInfo, in_chans: int, weights_dir: str | os.PathLike[str] | None) -> nn.Module:
    """Local weights dir first, then timm's hub; offline with neither is a clear error."""
    if not info.has_imagenet_weights:
        raise ValueError(
            f"{info.name} has no ImageNet weights; use pretrained='none' or a path to a weights file"
        )
    directory = resolve_weights_dir(weights_dir)
    local = find_local_weights(directory, info.local_weights)
    if local is not None:
        backbone = _create(info, in_chans)
        load_backbone_weights(backbone, local, in_chans=in_chans)
        return backbone
    try:
        return _create(info, in_chans, pretrained=True)
    except Exception as e:  # offline: huggingface_hub / urllib errors of many kinds
        where = f"{directory} holds none of them" if directory else f"{WEIGHTS_DIR_ENV} is not set"
        raise WeightsUnavailableError(
            f"no ImageNet weights for {info.name}. Either set {WEIGHTS_DIR_ENV} (or pass weights_dir) "
            f"to a folder with one of {list(info.local_weights)} ({where}), or allow internet access "
            f"for timm's hub (Hugging Face hub, model {info.timm_name}); "
            f"the hub said: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e


def build_model(
    architecture: str,
    *,
    num_classes: int,
    in_chans: int,
    dropout: float,
    frozen_depth: int = 0,
    pretrained: str = "none",
    weights_dir: str | Path | None = None,
) -> TransferModel:
    """Build a ``TransferModel``.

    ``pretrained`` is "none" (random init), "imagenet" (local weights dir, then timm's hub) or a
    path to a .pth/.pt/.safetensors state dict (loaded without unpickling code).
    """
    info = get_architecture(architecture)
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
    depth = resolve_frozen_depth(architecture, frozen_depth=frozen_depth)
    choice = str(pretrained).strip()
    if choice.lower() == "none":
        backbone = _create(info, in_chans)
    elif choice.lower() == "imagenet":
        backbone = _imagenet_backbone(info, in_chans, weights_dir)
    else:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise FileNotFoundError("pretrained must be 'none', 'imagenet' or a weights file; "
                                    f"{str(pretrained)!r} is none of these")
        backbone = _create(info, in_chans)
        load_backbone_weights(backbone, path, in_chans=in_chans)
    return TransferModel(backbone, info=info, num_classes=num_classes, dropout=dropout, frozen_depth=depth)
