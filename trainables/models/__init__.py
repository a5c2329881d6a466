"""medtune's model layer: timm backbones + a dropout/linear head, stage freezing, safe weights.

Importing this package registers ``simple_cnn`` with timm.
"""

from .freezing import resolve_frozen_depth
from .registry import ArchitectureInfo, UnknownArchitectureError, get_architecture, list_architectures
from .transfer import TransferModel, build_model
from .weights import WeightsFileError, WeightsUnavailableError, resolve_weights_dir

__all__ = [
    "ArchitectureInfo",
    "TransferModel",
    "UnknownArchitectureError",
    "WeightsFileError",
    "WeightsUnavailableError",
    "build_model",
    "get_architecture",
    "list_architectures",
    "resolve_frozen_depth",
    "resolve_weights_dir",
]
