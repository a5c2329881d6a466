"""What data a trial trains on, and where data and caches live on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import DataError

APP_NAME = "medtune"
DATA_DIR_ENV = "MEDTUNE_DATA_DIR"
CACHE_DIR_ENV = "MEDTUNE_CACHE_DIR"


@dataclass(frozen=True)
class DataConfig:
    """Everything that decides which arrays a trial sees.

    Frozen and plain so it pickles into Ray workers and hashes into cache keys.
    `source` is a MedMNIST name ("pneumoniamnist"), a path to an .npz, or a path to a
    Kermany-layout folder (ROOT/{train,val,test}/<CLASS>/*.jpeg).
    When `val_fraction` is set, val is carved (stratified, seeded by `split_seed`) out of
    train and the source's own val is ignored, for .npz and folder sources alike; test is
    never touched.
    """

    source: str
    image_size: int = 28
    val_fraction: float | None = None
    split_seed: int = 0
    train_subset: int | None = None
    val_subset: int | None = None
    max_bad_fraction: float = 0.01
    data_dir: str | None = None
    cache_dir: str | None = None
    #: Two-class tasks: the class scored as positive (a name or an index; ``classes.py``).
    positive_class: str | None = None

    def __post_init__(self) -> None:
        if self.positive_class is not None:
            object.__setattr__(self, "positive_class", str(self.positive_class))
        # Accept Path objects but store str so configs stay YAML/JSON friendly.
        for name in ("source", "data_dir", "cache_dir"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        if not isinstance(self.source, str) or not self.source.strip():
            raise DataError(f"DataConfig.source: expected a MedMNIST name or a path, got {self.source!r}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 1:
            raise DataError(f"DataConfig.image_size: expected a positive int, got {self.image_size!r}")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int):
            raise DataError(f"DataConfig.split_seed: expected an int, got {self.split_seed!r}")
        if self.val_fraction is not None and not 0.0 < float(self.val_fraction) < 1.0:
            raise DataError(f"DataConfig.val_fraction: expected a number in (0, 1) or None, got {self.val_fraction!r}")
        for name in ("train_subset", "val_subset"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise DataError(f"DataConfig.{name}: expected a positive int or None, got {value!r}")
        if not 0.0 <= float(self.max_bad_fraction) <= 1.0:
            raise DataError(f"DataConfig.max_bad_fraction: expected a number in [0, 1], got {self.max_bad_fraction!r}")


def _user_cache_root() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME))


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder where MedMNIST names resolve: explicit > $MEDTUNE_DATA_DIR > user cache dir/data."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return _user_cache_root() / "data"


def resolve_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the decode-once cache: explicit > $MEDTUNE_CACHE_DIR > user cache dir."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return _user_cache_root()
