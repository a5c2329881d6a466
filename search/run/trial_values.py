"""What every trial of a sweep shares: the space file's fixed keys and the driver's paths.

Resolved on the driver, once: a trial runs in Ray's working directory, so a relative path such as
``../chest_xray`` or ``$MEDTUNE_DATA_DIR=../shared/data`` must be made absolute where the user
wrote it. Light on purpose (no Ray): ``medtune validate`` and ``medtune final`` use it too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medtune.search.locations import is_remote
from medtune.search.spec.sweep_spec import SweepSpec
from medtune.trainables.data.loading import absolute_source


def driver_environment_keys() -> dict[str, Any]:
    """Trial-config keys taken from the driver's environment: where data, cache and weights live.

    Made absolute here: trials run in their own working directories, where a relative path such
    as ``../shared/data`` points somewhere else.
    """
    names = {"data_dir": "MEDTUNE_DATA_DIR", "cache_dir": "MEDTUNE_CACHE_DIR", "weights_dir": "MEDTUNE_WEIGHTS_DIR"}
    out: dict[str, Any] = {}
    for key, variable in names.items():
        value = os.environ.get(variable)
        out[key] = str(Path(value).expanduser().resolve()) if value and not is_remote(value) else value
    return out


def trial_fixed_values(spec: SweepSpec) -> dict[str, Any]:
    """What every trial shares, with relative paths made absolute where the driver runs: a trial's
    working directory is Ray's, so ``../chest_xray`` must not be resolved there."""
    base = spec.trial_base()
    base.update({k: v for k, v in driver_environment_keys().items() if v is not None})
    if "data_source" in base:
        base["data_source"] = absolute_source(base["data_source"])
    if base.get("pretrained") not in (None, "none", "imagenet"):
        base["pretrained"] = str(Path(base["pretrained"]).expanduser().absolute())
    return base
