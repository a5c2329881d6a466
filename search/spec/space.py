"""Search-space distributions and the Optuna define-by-run function built from them.

The YAML says ``lr: {loguniform: [1e-4, 1e-2]}``; here that becomes a ``Distribution`` that
knows how to ask an Optuna trial for a value. The space is handed to Ray Tune's ``OptunaSearch``
as a define-by-run function (``DefineByRunSpace``) rather than as Ray Tune distributions, because
the frozen depth's range depends on the architecture chosen in the same trial: ResNet has five
freezable stages, the plain CNN three. Optuna records the architecture first and then asks for
``frozen_depth`` in ``[low, min(high, stages of that architecture)]``; TPE handles the changing
range (same parameter name, same distribution kind). ``frozen_fraction`` is the alternative: a
share of the stages, the same range for every architecture.

``Distribution.to_optuna`` is the one mapping from a space file's kind to an Optuna distribution:
the searcher suggests through it, and the importance plot gives every trial the spec's ranges with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

KINDS = ("choice", "uniform", "loguniform", "int")


class SuggestTrial(Protocol):
    """The part of ``optuna.Trial`` the space uses (Ray wraps the trial in a captor)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...


@dataclass(frozen=True)
class Distribution:
    """One searchable key: ``kind`` is choice, uniform, loguniform or int."""

    kind: str
    values: tuple[Any, ...]  # the choices, or (low, high)
    log: bool = False

    @property
    def low(self) -> Any:
        return min(self.values) if self.kind == "choice" else self.values[0]

    @property
    def high(self) -> Any:
        return max(self.values) if self.kind == "choice" else self.values[1]

    def candidate_values(self) -> tuple[Any, ...]:
        """Values to check against the trial config's rules: every choice, or both bounds."""
        return self.values

    def to_optuna(self, high: Any = None) -> "BaseDistribution":
        """The Optuna distribution of this key: the spec's whole range, or up to ``high`` for an int
        whose upper bound depends on another choice (the frozen depth on the architecture)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(list(self.values))
        if self.kind == "int":
            return IntDistribution(int(self.values[0]), int(self.values[1] if high is None else high), log=self.log)
        return FloatDistribution(float(self.values[0]), float(self.values[1]), log=self.kind == "loguniform")

    def suggest(self, trial: SuggestTrial, name: str, high: Any = None) -> Any:
        """Ask ``trial`` for a value of ``to_optuna(high)`` through its ``suggest_*`` methods, the
        calls Ray's searcher records on the trial it wraps."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        dist = self.to_optuna(high)
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(name, list(dist.choices))
        if isinstance(dist, IntDistribution):
            return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.kind: list(self.values)}
        if self.log and self.kind == "int":
            out["log"] = True
        return out


class DefineByRunSpace:
    """Optuna define-by-run function for OptunaSearch: samples the space, returns fixed values too.

    A class rather than a closure so that Ray can pickle it into the searcher's state for
    ``Tuner.restore``.
    """

    def __init__(self, space: Mapping[str, Distribution], fixed: Mapping[str, Any],
                 stage_counts: Mapping[str, int]) -> None:
        self.space = dict(space)
        self.fixed = dict(fixed)
        self.stage_counts = dict(stage_counts)

    def __call__(self, trial: SuggestTrial) -> dict[str, Any]:
        sampled: dict[str, Any] = {}
        # The architecture comes first: the frozen depth's range depends on it.
        ordered = sorted(self.space, key=lambda k: (k != "architecture", k))
        for key in ordered:
            dist = self.space[key]
            if key == "frozen_depth":
                architecture = sampled.get("architecture", self.fixed.get("architecture"))
                stages = self.stage_counts[architecture]
                sampled[key] = dist.suggest(trial, key, high=min(int(dist.high), stages))
            else:
                sampled[key] = dist.suggest(trial, key)
        # Returned values are merged into the trial config; Optuna only records sampled ones.
        return dict(self.fixed)


def architectures_of(space: Mapping[str, Distribution], fixed: Mapping[str, Any], default: str) -> list[str]:
    """Every architecture a trial of this space can get."""
    if "architecture" in space:
        return list(space["architecture"].values)
    return [fixed.get("architecture", default)]


def parse_distribution(raw: Any, where: str, error: Callable[[str, str], None]) -> Distribution | None:
    """Read ``{kind: [...]}``; calls ``error(path, message)`` and returns None when it does not fit."""
    if not isinstance(raw, dict):
        return None  # a plain value: the caller treats it as fixed
    kinds = [k for k in raw if k in KINDS]
    extra = sorted(set(raw) - set(KINDS) - {"log"})
    if len(kinds) != 1 or extra:
        error(where, f"expected exactly one of {list(KINDS)} (plus optional 'log' for int), got keys {sorted(raw)}")
        return None
    kind = kinds[0]
    values = raw[kind]
    log = raw.get("log", False)
    if not isinstance(log, bool):
        error(f"{where}.log", f"expected true or false, got {log!r}")
        return None
    if log and kind != "int":
        error(f"{where}.log", "'log' only applies to int ranges; use loguniform for floats")
        return None
    if not isinstance(values, list) or not values:
        error(f"{where}.{kind}", f"expected a non-empty list, got {values!r}")
        return None
    if kind == "choice":
        if len({repr(v) for v in values}) != len(values):
            error(f"{where}.choice", f"choices must be distinct, got {values}")
            return None
        return Distribution(kind, tuple(values))
    if len(values) != 2:
        error(f"{where}.{kind}", f"expected [low, high], got {values!r}")
        return None
    low, high = values
    number = int if kind == "int" else (int, float)
    for bound, name in ((low, "low"), (high, "high")):
        if isinstance(bound, bool) or not isinstance(bound, number):
            wanted = "an integer" if kind == "int" else "a number"
            error(f"{where}.{kind}", f"{name} must be {wanted}, got {bound!r}")
            return None
    if low > high:
        error(f"{where}.{kind}", f"low > high: {low} > {high}")
        return None
    if kind == "loguniform" and low <= 0:
        error(f"{where}.{kind}", f"loguniform bounds must be > 0, got low={low}")
        return None
    if log and low <= 0:
        error(f"{where}.{kind}", f"a log int range needs low >= 1, got {low}")
        return None
    return Distribution(kind, (low, high), log=log)
