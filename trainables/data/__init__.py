"""medtune's data layer: sources -> decode-once cache -> seeded splits -> on-device batches.

    splits = load_splits(DataConfig("pneumoniamnist", val_fraction=0.1))
    train = BatchIterator(splits.train, 64, shuffle=True, seed=0, augment=AugmentConfig(rotation=10))

The batching names import torch lazily, so `medtune validate` (inspect_source) and
cache-warming processes start without paying for a torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cache import cache_stats, clear_memo
from .config import DataConfig, resolve_cache_dir, resolve_data_dir
from .errors import DataError
from .loading import inspect_source, load_splits
from .splits import DatasetSplits, SplitArrays
from .staging import staging_stats

if TYPE_CHECKING:
    from .batches import AugmentConfig, BatchIterator

__all__ = [
    "AugmentConfig",
    "BatchIterator",
    "DataConfig",
    "DataError",
    "DatasetSplits",
    "SplitArrays",
    "cache_stats",
    "clear_memo",
    "inspect_source",
    "load_splits",
    "resolve_cache_dir",
    "resolve_data_dir",
    "staging_stats",
]

_LAZY = {"AugmentConfig", "BatchIterator"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import batches

        return getattr(batches, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
