"""medtune's plain CNN, registered into timm so it takes the same path as the pretrained models.

The seed paper's "CNN" baseline is a small stack of conv/pool blocks. Writing it as a timm model
(``feature_info``, ``num_features``, ``forward_features``/``forward_head``, ``reset_classifier``,
a registered entrypoint and default cfg) means ``timm.create_model("simple_cnn", ...)`` works and
stage freezing, ``num_classes=0`` and ``features_only`` need no special case.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from timm.layers import ClassifierHead
from timm.models import build_model_with_cfg, generate_default_cfgs, is_model, model_entrypoint, register_model
from torch import nn

__all__ = ["SimpleCNN", "ConvBlock"]


class ConvBlock(nn.Sequential):
    """conv3x3-BN-ReLU-conv3x3-BN-ReLU-maxpool2: one stage, halves the resolution."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


class SimpleCNN(nn.Module):
    """Plain CNN: ``len(channels)`` ConvBlocks, global average pool, optional linear classifier."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        channels: tuple[int, ...] = (32, 64, 128),
        global_pool: str = "avg",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.feature_info: list[dict[str, Any]] = []
        blocks: list[nn.Module] = []
        prev = in_chans
        for i, chs in enumerate(channels):
            blocks.append(ConvBlock(prev, chs))
            self.feature_info.append(dict(num_chs=chs, reduction=2 ** (i + 1), module=f"blocks.{i}"))
            prev = chs
        self.blocks = nn.Sequential(*blocks)
        self.num_features = self.head_hidden_size = prev
        self.head = ClassifierHead(prev, num_classes, pool_type=global_pool, drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        # He init suits the ReLU stack; BN starts as identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^blocks\.0", blocks=r"^blocks\.(\d+)")

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs: Any) -> dict[str, Any]:
    # No weights exist (url/hf_hub_id empty): timm refuses pretrained=True for it.
    # mean/std 0.5 maps [0, 1] pixels to [-1, 1], a neutral choice for random init.
    return {
        "url": "",
        "num_classes": 2,
        "input_size": (3, 28, 28),
        "pool_size": (3, 3),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "first_conv": "blocks.0.0",
        "classifier": "head.fc",
        **kwargs,
    }


# timm's register_model reads the cfgs from this module attribute.
default_cfgs = generate_default_cfgs({"simple_cnn": _cfg()})


def simple_cnn(pretrained: bool = False, **kwargs: Any) -> SimpleCNN:
    """medtune's 3-block plain CNN (32/64/128 channels), the seed paper's "CNN" baseline."""
    return build_model_with_cfg(
        SimpleCNN,
        "simple_cnn",
        pretrained,
        feature_cfg=dict(flatten_sequential=True, out_indices=(0, 1, 2)),  # one per block
        **kwargs,
    )


def _register(fn: Any) -> None:
    """Register ``fn`` with timm; re-registering our own entrypoint (module reload) stays quiet."""
    name = fn.__name__
    if is_model(name) and getattr(model_entrypoint(name), "__module__", None) == fn.__module__:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            register_model(fn)
    else:
        register_model(fn)  # timm warns if this overwrites someone else's model of the same name


_register(simple_cnn)
