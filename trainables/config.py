"""The trial's configuration: the one contract between the sweep driver and the training function.

A Ray Tune trial receives a flat ``dict``. ``TrialConfig`` turns it into typed values once, at the
start of a trial, and carries the knowledge of what each key may hold. The sweep driver
(``search/``) asks this module which keys exist and whether a value fits (``check_value``), so the
YAML validator and the trainable can never disagree about a key. Flat names keep MLflow's compare
view and parallel-coordinates plot usable across trials.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from medtune.trainables.budget import BUDGET_UNITS

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("cosine", "none")
CHANNEL_MODES = ("auto", 1, 3)

#: What the training function reports after every epoch, with the direction that is better.
#: ``search/`` validates the objective against this table.
REPORTED_METRICS: dict[str, str] = {
    "val_loss": "min",
    "val_acc": "max",
    "val_auc": "max",
    "val_sensitivity": "max",
    "val_specificity": "max",
    "val_balanced_acc": "max",
    "train_loss": "min",
    "images_per_sec": "max",
    "epoch_seconds": "min",
    "data_seconds": "min",
}


def _positive(v: Any) -> str | None:
    return None if v > 0 else "must be > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _probability(v: Any) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _at_least_two(v: Any) -> str | None:
    return None if v >= 2 else "must be >= 2"


def _fraction(v: Any) -> str | None:
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _one_of(options: tuple) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {list(options)}"

    return check


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


def _key(type_: Any, check: Callable[[Any], str | None] | None = None, doc: str = "") -> Any:
    return field(default=None, metadata={"type": type_, "check": check, "doc": doc})


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs, as plain values. Defaults are what a bare trial gets."""

    architecture: str = field(
        default="simple_cnn",
        metadata={"type": str, "check": _architecture, "doc": "model name in the registry"},
    )
    pretrained: str = field(
        default="none",
        metadata={
            "type": str,
            "check": _pretrained,
            "doc": "none | imagenet | path; imagenet falls back to random init for "
            "architectures that have no ImageNet weights (simple_cnn)",
        },
    )
    frozen_depth: int | None = _key(int, _non_negative, "leading backbone stages frozen (0 = all train)")
    frozen_fraction: float | None = _key(float, _fraction, "frozen stages as a share of the architecture's stages")
    dropout: float = field(default=0.0, metadata={"type": float, "check": _probability, "doc": "head dropout"})
    batch_size: int = field(default=32, metadata={"type": int, "check": _positive, "doc": ""})
    lr: float = field(default=1e-3, metadata={"type": float, "check": _positive, "doc": "peak learning rate"})
    optimizer: str = field(default="adamw", metadata={"type": str, "check": _one_of(OPTIMIZERS), "doc": ""})
    momentum: float = field(default=0.9, metadata={"type": float, "check": _probability, "doc": "SGD only"})
    weight_decay: float = field(default=1e-4, metadata={"type": float, "check": _non_negative, "doc": ""})
    lr_schedule: str = field(default="cosine", metadata={"type": str, "check": _one_of(LR_SCHEDULES), "doc": ""})
    epochs: int = field(default=5, metadata={"type": int, "check": _positive, "doc": "epoch budget (budget_unit epochs)"})
    budget_unit: str = field(default="epochs", metadata={"type": str, "check": _one_of(BUDGET_UNITS),
                                                         "doc": "what budget counts: epochs, optimizer steps or images seen"})
    budget: int | None = _key(int, _positive, "budget in budget_unit (steps, images); epochs when null")
    cv_folds: int | None = _key(int, _at_least_two, "k-fold cross-validation over train + val (null: the val split)")
    image_size: int = field(default=28, metadata={"type": int, "check": _positive, "doc": "decode size"})
    augment_rotation: float = field(default=0.0, metadata={"type": float, "check": _non_negative, "doc": "degrees"})
    augment_shift: float = field(default=0.0, metadata={"type": float, "check": _fraction, "doc": "share of size"})
    augment_scale: float = field(default=0.0, metadata={"type": float, "check": _probability, "doc": "zoom +-"})
    augment_hflip: bool = field(default=False, metadata={"type": bool, "check": None, "doc": "off for X-rays"})
    class_weighted: bool = field(default=True, metadata={"type": bool, "check": None, "doc": "inverse-frequency loss weights"})
    label_smoothing: float = field(default=0.0, metadata={"type": float, "check": _probability, "doc": ""})
    channels: Any = field(
        default="auto",
        metadata={"type": (str, int), "check": _one_of(CHANNEL_MODES), "doc": "auto = 3 when pretrained, else 1"},
    )
    seed: int = field(default=0, metadata={"type": int, "check": None, "doc": ""})
    amp: bool = field(default=True, metadata={"type": bool, "check": None, "doc": "mixed precision on GPU"})
    channels_last: bool = field(default=True, metadata={"type": bool, "check": None, "doc": "1.5-1.8x on CPU"})
    # Data: filled by the sweep driver from the YAML's ``data`` section.
    data_source: str = field(default="pneumoniamnist", metadata={"type": str, "check": None, "doc": ""})
    data_val_fraction: float | None = _key(float, _probability, "carve val out of train")
    data_split_seed: int = field(default=0, metadata={"type": int, "check": None, "doc": ""})
    data_train_subset: int | None = _key(int, _positive, "stratified train subsample")
    data_val_subset: int | None = _key(int, _positive, "stratified val subsample")
    data_max_bad_fraction: float = field(default=0.01, metadata={"type": float, "check": _fraction, "doc": ""})
    data_positive_class: str | None = _key(str, None, "two-class tasks: the class scored as positive (name or index)")
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
    raise ValueError(f"{key}: cannot read {text!r} as {' or '.join(k.__name__ for k in candidates)}")


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
    if not _is_type(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        return f"expected {names}, got {type(value).__name__} {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be finite, got {value}"
    check = spec.metadata["check"]
    return check(value) if check else None


def _is_type(value: Any, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return any(_is_type(value, t) for t in expected)
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)
