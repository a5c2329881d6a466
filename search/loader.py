"""Reading a space file: YAML first, then ``--set key=value`` overrides, then validation.

This is the only place that parses YAML (always ``yaml.safe_load``); everything downstream works
on the validated ``SweepSpec``. Overrides follow timm's train.py convention: the file gives the
defaults, command-line flags win. A value is parsed as YAML, so ``--set search.num_samples=4`` is an
integer and ``--set 'space.lr={loguniform: [1e-4, 1e-2]}'`` a distribution.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

from search.spec import SpecError, SweepSpec, validate_spec


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; a missing file or a syntax error becomes a ``SpecError``."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), [("<file>", "no such file")])
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise SpecError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str], source: str) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=value`` applied."""
    out = copy.deepcopy(raw)
    problems: list[tuple[str, str]] = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append((f"--set {item}", "expected KEY=VALUE with a dotted key, e.g. search.num_samples=4"))
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problems.append((f"--set {key}", f"value is not valid YAML: {exc}"))
            continue
        node = out
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                problems.append((f"--set {key}", f"{'.'.join(parts[:depth + 1])} is {child!r}, not a mapping"))
                break
            node = child
        else:
            node[parts[-1]] = value
    if problems:
        raise SpecError(f"{source} (command-line overrides)", problems)
    return out


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> SweepSpec:
    """Read, override and validate a space file."""
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(str(path), [("<top>", f"expected a mapping of sections, got {type(raw).__name__}")])
    raw = apply_overrides(raw, overrides, str(path))
    return validate_spec(raw, source=str(path))


def dump_yaml(data: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False, default_flow_style=None)
    return path
