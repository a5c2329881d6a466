"""The trial's configuration: the one contract between the sweep driver and the training function.

A Ray Tune trial receives a flat ``dict``. ``TrialConfig`` turns it into typed values once, at the
start of a trial, and carries the knowledge of what each key may hold. The sweep driver
(``search/``) asks this module which keys exist and whether a value fits (``check_value``), so the
YAML validator and the trainable can never disagree about a key. Flat names keep MLflow's compare
view and parallel-coordinates plot usable across trials. The ``data_*`` keys (and ``image_size``)
take their type, default and rule from ``medtune.trainables.data.config.DATA_SETTINGS``; the rules
themselves come from the validation kit, ``medtune.trainables.checks``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any

from medtune.trainables.budget import BUDGET_UNITS
from medtune.trainables.checks import Check, Types, at_least, in_range, is_type, one_of, python_type_names
from medtune.trainables.data.config import DATA_SETTING
from medtune.trainables.objective import REPORTED_METRICS

__all__ = ["AMP_DTYPES", "CHANNEL_MODES", "LR_SCHEDULES", "OPTIMIZERS", "REPORTED_METRICS", "TrialConfig",
           "check_value", "config_keys", "parse_param", "progress_params"]

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("cosine", "none")
CHANNEL_MODES = ("auto", 1, 3)
AMP_DTYPES = ("auto", "bfloat16", "float16")

_positive = at_least(0, inclusive=False)
_non_negative = at_least(0)
_probability = in_range(0, 1, high_open=True)
_fraction = in_range(0, 1)


def _architecture(v: Any) -> str | None:
    # Imported lazily: the model registry pulls in timm, which the validator should only pay
    # for when an architecture is actually named.
    from medtune.trainables.models import list_architectures

    known = list_architectures()
    return None if v in known else f"unknown architecture {v!r}; known: {', '.join(known)}"


def _pretrained(v: Any) -> str | None:
    if not isinstance(v, str) or not v:
        return "must be 'none', 'imagenet' or a path to a weights file"
    return None


def _auto_or_bool(v: Any) -> str | None:
    return None if v == "auto" or isinstance(v, bool) else "must be auto, true or false"


def _auto_or_positive(v: Any) -> str | None:
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
        return None
    return "must be auto or an integer > 0"


def _key(type_: Types, check: Check | None = None, doc: str = "", default: Any = None, progress: bool = False) -> Any:
    """A trial key: its type, rule, doc and default; ``progress``: a column of Tune's live table when searched."""
    return field(default=default, metadata={"type": type_, "check": check, "doc": doc, "progress": progress})


def _data_key(name: str, default: Any = ...) -> Any:
    """The trial key of the data setting ``name``: type, rule and doc (and default, unless given)
    as ``DATA_SETTINGS`` defines them."""
    s = DATA_SETTING[name]
    return _key(s.type, s.check, s.doc, s.default if default is ... else default)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs, as plain values. Defaults are what a bare trial gets."""

    architecture: str = _key(str, _architecture, "model name in the registry", "simple_cnn", progress=True)
    pretrained: str = _key(str, _pretrained, "none | imagenet | path; imagenet falls back to random init for "
                           "architectures that have no ImageNet weights (simple_cnn)", "none")
    frozen_depth: int | None = _key(int, _non_negative, "leading backbone stages frozen (0 = all train)", progress=True)
    frozen_fraction: float | None = _key(float, _fraction, "frozen stages as a share of the architecture's stages",
                                         progress=True)
    dropout: float = _key(float, _probability, "head dropout", 0.0, progress=True)
    batch_size: int = _key(int, _positive, "", 32, progress=True)
    lr: float = _key(float, _positive, "peak learning rate", 1e-3, progress=True)
    optimizer: str = _key(str, one_of(OPTIMIZERS), "", "adamw")
    momentum: float = _key(float, _probability, "SGD only", 0.9)
    weight_decay: float = _key(float, _non_negative, "", 1e-4)
    lr_schedule: str = _key(str, one_of(LR_SCHEDULES), "", "cosine")
    epochs: int = _key(int, _positive, "epoch budget (budget_unit epochs)", 5)
    budget_unit: str = _key(str, one_of(BUDGET_UNITS), "what budget counts: epochs, optimizer steps or images seen",
                            "epochs")
    budget: int | None = _key(int, _positive, "budget in budget_unit (steps, images); epochs when null")
    cv_folds: int | None = _key(int, at_least(2), "k-fold cross-validation over train + val (null: the val split)")
    cv_race_until: int | None = _key(int, _positive, "racing over folds: one fold model trains until the budget "
                                     "counter reaches this (ASHA's last rung), then all cv_folds (null: all from "
                                     "the start)")
    image_size: int = _data_key("image_size")
    augment_rotation: float = _key(float, _non_negative, "degrees", 0.0)
    augment_shift: float = _key(float, _fraction, "share of size", 0.0)
    augment_scale: float = _key(float, _probability, "zoom +-", 0.0)
    augment_hflip: bool = _key(bool, None, "off for X-rays", False)
    class_weighted: bool = _key(bool, None, "inverse-frequency loss weights", True)
    label_smoothing: float = _key(float, _probability, "", 0.0)
    channels: Any = _key((str, int), one_of(CHANNEL_MODES),
                        "auto = 3 for colour data or a pretrained stem, else 1", "auto")
    seed: int = _key(int, None, "", 0)
    amp: bool = _key(bool, None, "mixed precision on GPU", True)
    # Device settings: ``auto`` resolves per device (``medtune.trainables.device_defaults``, docs/gpu.md).
    amp_dtype: str = _key(str, one_of(AMP_DTYPES), "autocast dtype on GPU; auto: bfloat16 where the GPU has it, "
                          "else float16", "auto")
    channels_last: Any = _key((str, bool), _auto_or_bool, "auto: on for CPU (1.5-1.8x), off for CUDA (first step "
                              "and every eval pass 10-20x slower)", "auto")
    cudnn_benchmark: Any = _key((str, bool), _auto_or_bool, "cuDNN autotuner; auto: on for CUDA (fixed input sizes)",
                                "auto")
    eval_batch_size: Any = _key((str, int), _auto_or_positive, "validation/test batch; auto: 256 on CPU, 4x the "
                                "training batch (256-1024) on CUDA", "auto")
    # Data: filled by the sweep driver from the YAML's ``data`` section.
    data_source: str = _data_key("source", "pneumoniamnist")
    data_val_fraction: float | None = _data_key("val_fraction")
    data_split_seed: int = _data_key("split_seed")
    data_train_subset: int | None = _data_key("train_subset")
    data_val_subset: int | None = _data_key("val_subset")
    data_max_bad_fraction: float = _data_key("max_bad_fraction")
    data_positive_class: str | None = _data_key("positive_class")
    data_path_column: str | None = _data_key("path_column")
    data_label_columns: str | None = _data_key("label_columns")
    data_split_column: str | None = _data_key("split_column")
    data_group_column: str | None = _data_key("group_column")
    data_on_leak: str = _data_key("on_leak")
    data_task: str = _data_key("task")
    # Where files are: set by the sweep driver from the environment.
    data_dir: str | None = _key(str, None, "where MedMNIST files resolve")
    cache_dir: str | None = _key(str, None, "decode-once cache")
    weights_dir: str | None = _key(str, None, "local ImageNet weights")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrialConfig":
        """Build from a trial's dict; unknown keys and bad values raise ``ValueError`` naming them."""
        unknown = sorted(set(values) - set(config_keys()))
        if unknown:
            raise ValueError(f"unknown trial config keys: {unknown}; known: {sorted(config_keys())}")
        problems = [f"{k}: {msg}" for k, v in values.items() if (msg := check_value(k, v))]
        if problems:
            raise ValueError("invalid trial config: " + "; ".join(problems))
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def progress_params() -> tuple[str, ...]:
    """The trial keys Tune's live table shows as columns when the space searches them."""
    return tuple(f.name for f in fields(TrialConfig) if f.metadata.get("progress"))


def config_keys() -> dict[str, dataclasses.Field]:
    """The trial config's keys and their fields (type, check, doc in ``metadata``)."""
    return {f.name: f for f in fields(TrialConfig)}


def parse_param(key: str, text: str) -> Any:
    """The value of ``key`` back from its string form (``str(value)``, as MLflow params store it)."""
    spec = config_keys().get(key)
    if spec is None:
        raise ValueError(f"unknown trial config key {key!r}")
    if text == "None":
        return None
    expected = spec.metadata["type"]
    candidates = expected if isinstance(expected, tuple) else (expected,)
    for kind in sorted(candidates, key=lambda k: k is str):  # "3" is the int 3 where both fit
        try:
            if kind is bool and text in ("True", "False"):
                return text == "True"
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
            if kind is str:
                return text
        except ValueError:
            continue
    raise ValueError(f"{key}: cannot read {text!r} as {python_type_names(expected)}")


def _coerce(key: str, value: Any) -> Any:
    expected = config_keys()[key].metadata["type"]
    if value is None:
        return None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_value(key: str, value: Any) -> str | None:
    """Why ``value`` does not fit ``key`` (a short phrase), or ``None`` when it fits."""
    spec = config_keys().get(key)
    if spec is None:
        return f"unknown key; known: {', '.join(sorted(config_keys()))}"
    if value is None:
        return None if spec.default is None else "must not be null"
    expected = spec.metadata["type"]
    if not is_type(value, expected):
        return f"expected {python_type_names(expected)}, got {type(value).__name__} {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be finite, got {value}"
    check = spec.metadata["check"]
    return check(value) if check else None
