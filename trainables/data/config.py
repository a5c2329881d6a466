"""What data a trial trains on: the data settings, their one validation, and where files live.

The data settings have one home, ``DATA_SETTINGS``: each one's name under a space file's ``data:``
section (also its ``DataConfig`` field), its key in the flat trial config, its type, default and
rule. The space-file validator (``medtune.search.spec``), ``TrialConfig`` and ``DataConfig`` all
check a value against that row, so the three can never disagree about a range. ``DataConfig`` is
the data layer's input; ``DataConfig.from_trial`` reads it off a trial config and
``DataConfig.trial_values`` writes it back, so nothing else spells out the mapping. No torch here:
the sweep driver builds a ``DataConfig`` without paying for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import platformdirs

from medtune.trainables.checks import Check, Types, at_least, in_range, is_blank, one_of, quoted, type_problem

from .errors import DataError
from .task import AUTO, TASKS

if TYPE_CHECKING:
    from medtune.trainables.config import TrialConfig

APP_NAME = "medtune"
DATA_DIR_ENV = "MEDTUNE_DATA_DIR"
CACHE_DIR_ENV = "MEDTUNE_CACHE_DIR"


@dataclass(frozen=True)
class DataSetting:
    """One data setting. ``type`` is what is stored; ``accepts`` what a space file may give
    (``positive_class`` takes an index too, kept as text). ``required``: no default, never blank."""

    name: str
    trial_key: str
    type: Types
    default: Any = None
    check: Check | None = None
    doc: str = ""
    accepts: Types | None = None
    required: bool = False

    @property
    def accepted(self) -> Types:
        return self.accepts or self.type

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit (a message that quotes it), or None."""
        if self.required and is_blank(value):
            return f"required: {self.doc}, got {value!r}"
        if value is None:
            return None if self.default is None else type_problem(value, self.type)
        return type_problem(value, self.type) or quoted(self.check, value)


#: What ``data.on_leak`` may say: report a leakage or shortcut finding (``warn``), refuse the data
#: (``error``), or drop val/test images that are exact copies of an earlier split's (``drop``).
ON_LEAK = ("warn", "error", "drop")


def column_name_problem(value: object) -> str | None:
    """A manifest column's name: text, not blank, without ',' (several label columns travel comma-joined)."""
    if not isinstance(value, str) or not value.strip():
        return f"expected a column name of the CSV manifest, got {value!r}"
    if "," in value:
        return f"a column name must not contain ',', got {value!r}"
    return None


def label_columns_problem(value: object) -> str | None:
    """One categorical column (a name, or a list of one), or several 0/1 columns: a multi-label task."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        return f"expected a column name or a list of column names, got {value!r}"
    for name in names:
        if problem := column_name_problem(name):
            return problem
    if len(set(names)) < len(names):
        return f"a label column is named twice in {value!r}"
    return None


def joined_columns(value: object) -> object:
    """A YAML list of label columns as the one string a trial config and MLflow carry (``a,b``)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return value


#: The ``data:`` section, in the order a space file documents it. The ranges are the ones a space
#: file has always been held to; a trial config and a ``DataConfig`` are held to the same.
DATA_SETTINGS: tuple[DataSetting, ...] = (
    DataSetting("source", "data_source", str, required=True,
                doc="a MedMNIST name (pneumoniamnist), an .npz file, a chest X-ray folder or a CSV manifest"),
    DataSetting("image_size", "image_size", int, 28, at_least(8), "decode size"),
    DataSetting("val_fraction", "data_val_fraction", float, None, in_range(0.01, 0.9), "carve val out of train"),
    DataSetting("split_seed", "data_split_seed", int, 0),
    DataSetting("train_subset", "data_train_subset", int, None, at_least(2), "stratified train subsample"),
    DataSetting("val_subset", "data_val_subset", int, None, at_least(2), "stratified val subsample"),
    DataSetting("max_bad_fraction", "data_max_bad_fraction", float, 0.01, in_range(0, 1),
                "share of unreadable images tolerated"),
    DataSetting("positive_class", "data_positive_class", str, None, None,
                "two-class tasks: the class scored as positive (name or index)", accepts=(str, int)),
    DataSetting("path_column", "data_path_column", str, None, column_name_problem,
                "CSV manifests: the column of image paths, relative to the CSV's folder"),
    DataSetting("label_columns", "data_label_columns", str, None, label_columns_problem,
                "CSV manifests: the label column (one categorical column), or several 0/1 columns (multi-label "
                "findings)", accepts=(str, list)),
    DataSetting("split_column", "data_split_column", str, None, column_name_problem,
                "CSV manifests: each row's split (train/training, val/valid/validation, test/testing)"),
    DataSetting("group_column", "data_group_column", str, None, column_name_problem,
                "CSV manifests: a patient or study ID; carved splits and folds keep each group whole"),
    DataSetting("on_leak", "data_on_leak", str, "warn", one_of(ON_LEAK),
                "what a leakage or shortcut finding of validate does: warn, error, or drop (exact copies in "
                "val/test of an earlier split's images)"),
    DataSetting("task", "data_task", str, AUTO, one_of(TASKS),
                "auto or classification: unordered classes; ordinal: the classes are grades in class index "
                "order (at least 3), and trials also report val_qwk and val_mae; multilabel: any number of 0/1 "
                "findings per image (auto detects them)"),
)
#: The settings only a CSV manifest reads.
MANIFEST_SETTINGS = ("path_column", "label_columns", "split_column", "group_column")
#: Each setting by its ``data:`` name.
DATA_SETTING = {s.name: s for s in DATA_SETTINGS}
#: Where files are, not which data: the same key on a trial config and a ``DataConfig``, set by the
#: machine (environment), never by a space file.
LOCATION_KEYS = ("data_dir", "cache_dir")
#: The trial-config keys a ``DataConfig`` is made from.
DATA_TRIAL_KEYS: tuple[str, ...] = (*(s.trial_key for s in DATA_SETTINGS), *LOCATION_KEYS)


@dataclass(frozen=True)
class DataConfig:
    """Everything that decides which arrays a trial sees.

    Frozen and plain so it pickles into Ray workers and hashes into cache keys.
    `source` is a MedMNIST name ("pneumoniamnist"), a path to an .npz, a path to a
    Kermany-layout folder (ROOT/{train,val,test}/<CLASS>/*.jpeg), or a CSV manifest read through
    the ``*_column`` settings (``manifest.py``).
    When `val_fraction` is set, val is carved (stratified, seeded by `split_seed`) out of
    train and the source's own val is ignored, for .npz and folder sources alike; test is
    never touched. A space file's ``data:`` section validates into one (without the locations).
    """

    # Defaults are the table's (DATA_SETTINGS), written once there.
    source: str
    image_size: int = DATA_SETTING["image_size"].default
    val_fraction: float | None = DATA_SETTING["val_fraction"].default
    split_seed: int = DATA_SETTING["split_seed"].default
    train_subset: int | None = DATA_SETTING["train_subset"].default
    val_subset: int | None = DATA_SETTING["val_subset"].default
    max_bad_fraction: float = DATA_SETTING["max_bad_fraction"].default
    data_dir: str | None = None
    cache_dir: str | None = None
    #: Two-class tasks: the class scored as positive (a name or an index; ``classes.py``).
    positive_class: str | None = DATA_SETTING["positive_class"].default
    #: CSV manifests (``manifest.py``): the columns of image paths, labels, splits and groups.
    path_column: str | None = DATA_SETTING["path_column"].default
    label_columns: str | None = DATA_SETTING["label_columns"].default
    split_column: str | None = DATA_SETTING["split_column"].default
    group_column: str | None = DATA_SETTING["group_column"].default
    #: What a leakage or shortcut finding does (``ON_LEAK``; ``leakage.py``).
    on_leak: str = DATA_SETTING["on_leak"].default
    #: What the labels are (``TASKS``; ``task.py``): ``ordinal`` reads the classes as grades.
    task: str = DATA_SETTING["task"].default

    def __post_init__(self) -> None:
        if self.positive_class is not None:
            object.__setattr__(self, "positive_class", str(self.positive_class))
        object.__setattr__(self, "label_columns", joined_columns(self.label_columns))
        # Accept Path objects but store str so configs stay YAML/JSON friendly.
        for name in ("source", *LOCATION_KEYS):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))
        for setting in DATA_SETTINGS:
            if message := setting.problem(getattr(self, setting.name)):
                raise DataError(f"DataConfig.{setting.name}: {message}")

    @classmethod
    def from_trial(cls, cfg: TrialConfig) -> DataConfig:
        """The data a trial with config ``cfg`` trains on."""
        return cls(**{s.name: getattr(cfg, s.trial_key) for s in DATA_SETTINGS},
                   **{key: getattr(cfg, key) for key in LOCATION_KEYS})

    @classmethod
    def from_trial_values(cls, values: Mapping[str, Any]) -> DataConfig:
        """The data of a trial config given as a dict (other keys ignored), checked by the same
        table a ``TrialConfig`` is (``DataError``, a ``ValueError``, naming the setting)."""
        settings = {s.name: _stored(s, values[s.trial_key]) for s in DATA_SETTINGS if s.trial_key in values}
        return cls(**settings, **{key: values.get(key) for key in LOCATION_KEYS})

    @property
    def label_column_names(self) -> tuple[str, ...]:
        """The label columns one by one (stored comma-joined, as a trial config carries them)."""
        return tuple(self.label_columns.split(",")) if self.label_columns else ()

    def trial_values(self) -> dict[str, Any]:
        """The data settings as trial-config keys (the locations are the machine's, not included)."""
        return {s.trial_key: getattr(self, s.name) for s in DATA_SETTINGS}


def _stored(setting: DataSetting, value: Any) -> Any:
    """An integer given for a float setting is kept as the float a trial config holds."""
    if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


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
