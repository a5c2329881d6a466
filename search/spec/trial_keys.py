"""The ``space:`` and ``fixed:`` sections: trial-config keys, checked against what the trainable accepts.

A key is valid when ``TrialConfig`` has it and the sweep driver does not own it (``DRIVER_KEYS``),
and a value (or every value a distribution can take) when ``check_value`` accepts it, so this
validator and the trainable can never disagree. Checks that need several keys at once (frozen depth
against each architecture's stages, a weights file that exists, a grid's size) come after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medtune.search.spec.space import Distribution, architectures_of, parse_distribution
from medtune.trainables.checks import Problems
from medtune.trainables.config import TrialConfig, check_value, config_keys
from medtune.trainables.data.config import DATA_TRIAL_KEYS

#: Trial-config keys the sweep driver owns (from the environment or other sections).
#: ``image_size`` is the exception: the data section sets the default and the space may search it.
DRIVER_KEYS = {"epochs", "budget_unit", "budget", "cv_folds", "cv_race_until", "weights_dir",
               *DATA_TRIAL_KEYS} - {"image_size"}


def read_space_and_fixed(raw: dict[str, Any], problems: Problems) -> tuple[dict[str, Distribution], dict[str, Any]]:
    """(searched distributions, fixed values), each key and value checked as a trial would."""
    space: dict[str, Distribution] = {}
    fixed: dict[str, Any] = {}
    settable = sorted(set(config_keys()) - DRIVER_KEYS)
    for section in ("fixed", "space"):
        values = raw.get(section, {}) or {}
        if not isinstance(values, dict):
            problems(section, f"expected a mapping of trial keys, got {type(values).__name__}")
            continue
        for key, value in values.items():
            path = f"{section}.{key}"
            if key not in config_keys() or key in DRIVER_KEYS:
                hint = ""
                if key == "epochs":
                    hint = " (the epoch budget is search.scheduler.max_t)"
                elif key in DRIVER_KEYS:
                    hint = " (set it in the data section)"
                problems(path, f"unknown trial key{hint}; expected one of: {', '.join(settable)}")
                continue
            if key in fixed or key in space:
                problems(path, "given in both 'space' and 'fixed'")
                continue
            dist = parse_distribution(value, path, problems) if section == "space" else None
            if section == "space" and isinstance(value, dict):
                if dist is None:
                    continue
                for candidate in dist.candidate_values():
                    if msg := check_value(key, candidate):
                        problems(f"{path}.{dist.kind}", f"{candidate!r}: {msg}")
                space[key] = dist
            else:
                if msg := check_value(key, value):
                    problems(path, msg)
                    continue
                fixed[key] = value
    return space, fixed


def check_combinations(space: dict[str, Distribution], fixed: dict[str, Any], problems: Problems) -> None:
    """Checks that need several keys: frozen depth per architecture, pretrained weights."""
    if ("frozen_depth" in space or "frozen_depth" in fixed) \
            and ("frozen_fraction" in space or "frozen_fraction" in fixed):
        problems("space.frozen_depth",
                 "give either frozen_depth (stages) or frozen_fraction (share of stages), not both")
    architectures = architectures_of(space, fixed, TrialConfig().architecture)
    try:
        from medtune.trainables.models import get_architecture
        infos = {a: get_architecture(a) for a in architectures}
    except Exception:  # unknown names were reported by the per-key checks already
        return
    if "frozen_depth" in space and space["frozen_depth"].kind == "int":
        low = int(space["frozen_depth"].low)
        for arch, info in infos.items():
            if low > info.num_stages:
                problems("space.frozen_depth.int", f"low {low} exceeds the {info.num_stages} stages of {arch}")
    elif "frozen_depth" in space:
        problems("space.frozen_depth", "expected an int range {int: [low, high]} (or use frozen_fraction for a share)")
    if isinstance(fixed.get("frozen_depth"), int):
        for arch, info in infos.items():
            if fixed["frozen_depth"] > info.num_stages:
                problems("fixed.frozen_depth",
                         f"{fixed['frozen_depth']} exceeds the {info.num_stages} stages of {arch}")
    pretrained = fixed.get("pretrained", "none")
    if "pretrained" not in space and pretrained not in ("none", "imagenet") \
            and not Path(str(pretrained)).expanduser().exists():
        problems("fixed.pretrained", f"weights file not found: {pretrained}")


def check_grid(space: dict[str, Distribution], num_samples: int, problems: Problems) -> None:
    """A grid runs every combination once: only choices, and num_samples equal to the grid's size."""
    size = 1
    for key, dist in space.items():
        if dist.kind != "choice":
            problems(f"space.{key}", f"the grid sampler needs {{choice: [...]}} for every key, got {dist.kind}")
            return
        size *= len(dist.values)
    if num_samples != size:
        problems("search.num_samples", f"the grid has {size} points: set num_samples to {size}, got {num_samples}")
