"""The one validation kit: rules for a value, the type test, and problems named by key path.

Every validator in medtune is built from these pieces: the space-file checks in
``medtune.search.spec`` (which report ``space.lr.loguniform: ...`` and collect every problem before
failing), ``TrialConfig`` (one trial's flat config) and ``DataConfig`` (which data a trial sees).
Sharing the rules means a bound is written once: the key tables (``trainables/config.py``,
``trainables/data/config.py``) hold a ``Rule`` per key, and each validator only decides how to
word a broken rule. It lives in ``trainables/`` because the trainable must never import ``search/``.

A ``Check`` is any callable that says why a value does not fit, or ``None``. A ``Rule`` is a check
with a fixed phrase ("must be >= 1"); ``quoted`` adds the value to it (", got 0") where the message
is read without the value beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: Why a value does not fit (a short message), or None when it fits.
Check = Callable[[Any], str | None]
#: One accepted type, or a tuple of them.
Types = type | tuple[type, ...]

_FRIENDLY_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                   dict: "a mapping", list: "a list"}


@dataclass(frozen=True)
class Rule:
    """A bound on a value: ``rule(value)`` is ``phrase`` when ``fits(value)`` is false, else None."""

    phrase: str
    fits: Callable[[Any], bool]

    def __call__(self, value: Any) -> str | None:
        return None if self.fits(value) else self.phrase


def at_least(low: float, inclusive: bool = True) -> Rule:
    """``>= low`` (or ``> low`` when not ``inclusive``)."""
    if inclusive:
        return Rule(f"must be >= {low}", lambda v: v >= low)
    return Rule(f"must be > {low}", lambda v: v > low)


def in_range(low: float, high: float, high_open: bool = False) -> Rule:
    """``[low, high]``, or ``[low, high)`` when ``high_open``."""
    if high_open:
        return Rule(f"must be in [{low}, {high})", lambda v: low <= v < high)
    return Rule(f"must be in [{low}, {high}]", lambda v: low <= v <= high)


def one_of(options: tuple[Any, ...]) -> Rule:
    return Rule(f"must be one of {list(options)}", lambda v: v in options)


def quoted(check: Check | None, value: Any) -> str | None:
    """``check``'s problem with ``value`` for a message that does not show the value otherwise: a
    ``Rule``'s phrase gets ``, got VALUE``; other checks write whole messages themselves."""
    if check is None or (problem := check(value)) is None:
        return None
    return f"{problem}, got {value!r}" if isinstance(check, Rule) else problem


def is_type(value: Any, types: Types) -> bool:
    """``isinstance`` as a config file means it: a bool is no number, an int is a float."""
    if isinstance(types, tuple):
        return any(is_type(value, t) for t in types)
    if types is bool:
        return isinstance(value, bool)
    if types is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if types is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, types)


def _as_tuple(types: Types) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def type_names(types: Types) -> str:
    """The types as a space file's reader says them: ``an integer or a string``."""
    return " or ".join(_FRIENDLY_NAMES.get(t, t.__name__) for t in _as_tuple(types))


def python_type_names(types: Types) -> str:
    """The types as Python names them: ``int or str``."""
    return " or ".join(t.__name__ for t in _as_tuple(types))


def type_problem(value: Any, types: Types) -> str | None:
    """``expected an integer, got str 'x'``, or None when ``value`` has one of ``types``."""
    return None if is_type(value, types) else f"expected {type_names(types)}, got {type(value).__name__} {value!r}"


def is_blank(value: Any) -> bool:
    """None, or a string of nothing but whitespace: a required value that was not given."""
    return value is None or (isinstance(value, str) and not value.strip())


class Problems:
    """Collects (key path, message) pairs, so a file is reported whole instead of one error at a time."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass(frozen=True)
class Field:
    """One key of a mapping: the types it accepts, its default (None: may be null) and its check."""

    types: Types
    default: Any = None
    check: Check | None = None


def read_section(value: Any, key: str, fields: dict[str, Field], problems: Problems) -> dict[str, Any]:
    """Read the mapping at path ``key``: unknown keys, wrong types and failed checks go to
    ``problems`` as ``key.name``; returns every field's value (its default where the type was wrong)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems(key, f"expected a mapping, got {type(value).__name__} {value!r}")
        return {name: f.default for name, f in fields.items()}
    out: dict[str, Any] = {}
    for unknown in sorted(set(value) - set(fields)):
        problems(f"{key}.{unknown}", f"unknown key; expected one of: {', '.join(fields)}")
    for name, f in fields.items():
        v = value.get(name, f.default)
        path = f"{key}.{name}"
        if v is None and f.default is None:
            out[name] = None
            continue
        if msg := type_problem(v, f.types):
            problems(path, msg)
            out[name] = f.default
            continue
        if msg := quoted(f.check, v):
            problems(path, msg)
        out[name] = v
    return out
