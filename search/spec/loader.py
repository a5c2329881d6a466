"""Reading a space file: YAML first, then ``--set key=value`` overrides, then validation.

This is the only place that parses YAML (always ``yaml.safe_load``); everything downstream works
on the validated ``SweepSpec``. Overrides follow timm's train.py convention: the file gives the
defaults, command-line flags win. A value is parsed as YAML, so ``--set search.num_samples=4`` is an
integer and ``--set 'space.lr={loguniform: [1e-4, 1e-2]}'`` a distribution.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from medtune.search.spec.sweep_spec import SpecError, SweepSpec, validate_spec


def duplicate_keys(text: str) -> list[tuple[str, str]]:
    """(key path, message) for every key given twice in one mapping of a YAML document.

    ``yaml.safe_load`` keeps the last of two equal keys, so ``num_samples: 4`` followed later by
    ``num_samples: 400`` (or a section pasted twice) would silently change the sweep. The check
    walks the composed node tree (no objects are constructed) before the file is loaded.
    """
    found: list[tuple[str, str]] = []

    def walk(node: yaml.Node | None, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
                where = f"{path}.{key}" if path else key
                if key in first_line:
                    found.append((where, f"given twice (lines {first_line[key]} and {key_node.start_mark.line + 1}); "
                                         "expected each key once"))
                else:
                    first_line[key] = key_node.start_mark.line + 1
                walk(value_node, where)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return found


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; a missing file, a syntax error, a duplicate key or bytes that are
    not UTF-8 become a ``SpecError``."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), [("<file>", "no such file")])
    try:
        text = path.read_text(encoding="utf-8")
        duplicates = duplicate_keys(text)
        if duplicates:
            raise SpecError(str(path), duplicates)
        return yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), [("<file>", f"not UTF-8 text (byte {exc.start}: {exc.reason}); "
                                               "save the space file as UTF-8")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise SpecError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


Overrides = Iterable[str] | Mapping[str, Any]


def _parsed_overrides(overrides: Overrides, problems: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """(dotted key, value) pairs: a mapping's values as given (the Python API), ``KEY=VALUE``
    strings with the value parsed as YAML (``--set``)."""
    if isinstance(overrides, Mapping):
        return [(str(key).strip(), value) for key, value in overrides.items()]
    pairs = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            problems.append((f"--set {item}", "expected KEY=VALUE with a dotted key, e.g. search.num_samples=4"))
            continue
        try:
            pairs.append((key.strip(), yaml.safe_load(text) if text.strip() else None))
        except yaml.YAMLError as exc:
            problems.append((f"--set {key.strip()}", f"value is not valid YAML: {exc}"))
    return pairs


def apply_overrides(raw: dict[str, Any], overrides: Overrides, source: str) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=value`` (or mapping item) applied."""
    out = copy.deepcopy(raw)
    problems: list[tuple[str, str]] = []
    for key, value in _parsed_overrides(overrides, problems):
        if not key or any(not part for part in key.split(".")):
            problems.append((f"--set {key}", "expected KEY=VALUE with a dotted key, e.g. search.num_samples=4"))
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


def load_spec(path: str | Path, overrides: Overrides = ()) -> SweepSpec:
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


def load_space(space: str | Path | Mapping[str, Any] | SweepSpec, overrides: Overrides = ()) -> SweepSpec:
    """A space file, an already-parsed space document (a dict, as a notebook builds it) or a
    validated spec, with ``overrides`` applied, validated like a file."""
    if isinstance(space, SweepSpec):
        if not overrides:
            return space
        return validate_spec(apply_overrides(space.raw, overrides, space.source), source=space.source)
    if isinstance(space, Mapping):
        return validate_spec(apply_overrides(dict(space), overrides, "<space dict>"), source="<space dict>")
    return load_spec(space, overrides)
