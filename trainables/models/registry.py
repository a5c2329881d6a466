"""The architectures medtune can sweep over, with the facts the search and data code need.

Everything here is cheap to read (no model is built): search spaces use ``num_stages`` to bound
``frozen_depth`` and the data pipeline uses ``min_input_size``/``mean``/``std``. The model side
is checked against these declarations in tests/trainables/models/test_models.py.

Stages (``num_stages``) come from timm's ``feature_info`` taps; see ``freezing.py``.
``min_input_size`` is the smallest square input a forward pass accepts (in_chans=1, batch 2,
eval), measured with timm 1.0.31 and pinned by a test on both sides (min works, min-1 fails).

==========================  =================  ==========  ==============  =============
name                        paper_name         num_stages  min_input_size  mean/std
==========================  =================  ==========  ==============  =============
simple_cnn                  CNN                3           8               0.5 / 0.5
densenet121                 DenseNet           5           29              ImageNet
vgg16_bn                    VGG-16             5           32              ImageNet
resnet18                    None               5           1               ImageNet
resnet50                    ResNet             5           1               ImageNet
inception_v3                InceptionNet       5           75              0.5 / 0.5
mobilenetv2_100             None               5           1               ImageNet
tf_efficientnet_lite0       None               5           1               0.5 / 0.5
==========================  =================  ==========  ==============  =============

The seed paper does not say which ResNet it used; like its DenseNet/VGG-16/InceptionNet (the
classic Keras-applications set: DenseNet121, VGG16, ResNet50, InceptionV3) we map "ResNet" to
resnet50, so each paper name maps to exactly one architecture. resnet18 is the cheap CPU variant.
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.models import get_pretrained_cfg, is_model_pretrained

from . import simple_cnn as _simple_cnn  # noqa: F401  (registers "simple_cnn" with timm)

__all__ = ["ArchitectureInfo", "UnknownArchitectureError", "list_architectures", "get_architecture"]

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class ArchitectureInfo:
    """One sweepable architecture; ``name`` is both medtune's and timm's model name."""

    name: str
    timm_name: str
    num_stages: int
    min_input_size: int
    mean: Triple
    std: Triple
    paper_name: str | None
    local_weights: tuple[str, ...]

    @property
    def has_imagenet_weights(self) -> bool:
        """Whether ``pretrained="imagenet"`` can work at all (a local file name or timm hub weights)."""
        return bool(self.local_weights) or is_model_pretrained(self.timm_name)


class UnknownArchitectureError(KeyError):
    """An architecture name medtune does not know; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message
        return f"unknown architecture {self.name!r}; known: {', '.join(list_architectures())}"


def _local_names(name: str, *extra: str) -> tuple[str, ...]:
    """File names looked up in the weights dir: medtune's own convention first, then extras."""
    return (f"{name}_imagenet.safetensors", f"{name}_imagenet.pth", *extra)


def _info(
    name: str,
    *,
    num_stages: int,
    min_input_size: int,
    paper_name: str | None,
    local_weights: tuple[str, ...] | None = None,
) -> ArchitectureInfo:
    # mean/std come from timm's default pretrained cfg so they cannot drift from the weights.
    cfg = get_pretrained_cfg(name, allow_unregistered=False)
    assert cfg is not None
    return ArchitectureInfo(
        name=name,
        timm_name=name,
        num_stages=num_stages,
        min_input_size=min_input_size,
        mean=tuple(float(v) for v in cfg.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.std),  # type: ignore[arg-type]
        paper_name=paper_name,
        local_weights=_local_names(name) if local_weights is None else local_weights,
    )


_ARCHITECTURES: dict[str, ArchitectureInfo] = {
    info.name: info
    for info in (
        _info("simple_cnn", num_stages=3, min_input_size=8, paper_name="CNN", local_weights=()),
        _info("densenet121", num_stages=5, min_input_size=29, paper_name="DenseNet"),
        _info("vgg16_bn", num_stages=5, min_input_size=32, paper_name="VGG-16"),
        _info("resnet18", num_stages=5, min_input_size=1, paper_name=None),
        _info("resnet50", num_stages=5, min_input_size=1, paper_name="ResNet"),
        _info("inception_v3", num_stages=5, min_input_size=75, paper_name="InceptionNet"),
        _info(
            "mobilenetv2_100",
            num_stages=5,
            min_input_size=1,
            paper_name=None,
            # The shared file holds torchvision keys; weights.py registers its key adapter.
            local_weights=_local_names("mobilenetv2_100", "mobilenet_v2_imagenet_features.pth"),
        ),
        _info("tf_efficientnet_lite0", num_stages=5, min_input_size=1, paper_name=None),
    )
}


def list_architectures() -> list[str]:
    """Names accepted by ``get_architecture``/``build_model``, in declaration order."""
    return list(_ARCHITECTURES)


def get_architecture(name: str) -> ArchitectureInfo:
    """Look up one architecture; unknown names raise ``UnknownArchitectureError``."""
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise UnknownArchitectureError(name) from None
