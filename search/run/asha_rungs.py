"""ASHA's rungs carried through ``medtune resume``, and written out for the user to read.

Ray Tune saves the searcher and the callbacks with its experiment state, but never its scheduler:
after ``Tuner.restore`` ASHA would start with empty rungs, so the first trial to reach a
milestone after a resume would pass it unopposed and the cut-offs would be computed from the
trials of the second half only. ``AshaRungs`` is a callback holding the scheduler: its state (the
values recorded at every milestone, as plain numbers) goes into Tune's experiment state and back
into the restored scheduler. The tuner is pickled as one object, so the restored callback and the
restored scheduler are the same objects as before. ASHA keeps its rungs in private attributes, read
and filled only through ``medtune.search.run._ray_compat`` (which says why its ``save``/``restore`` do
not fit).

``rungs_document`` turns the rungs into what a user asks of a finished sweep: at each milestone,
which trials arrived with what value of the objective, and the cut-off a trial had to beat there;
``write_rungs`` puts it in the run folder as ``asha_rungs.json``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler

from medtune.search.locations import is_remote
from medtune.search.run._ray_compat import (
    asha_brackets,
    asha_metric_sign,
    asha_num_stopped,
    asha_reduction_factor,
    bracket_cutoff,
    bracket_rungs,
    set_asha_num_stopped,
)
from medtune.search.run.storage import upload

RUNGS_FILE = "asha_rungs.json"


class AshaRungs(tune.Callback):
    """Keeps an ``ASHAScheduler``'s rungs in Tune's saved experiment state."""

    def __init__(self, scheduler: AsyncHyperBandScheduler) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any]:
        return {
            "brackets": [[[float(milestone), {trial: float(value) for trial, value in recorded.items()}]
                          for milestone, recorded in bracket_rungs(bracket)]
                         for bracket in asha_brackets(self.scheduler)],
            "num_stopped": asha_num_stopped(self.scheduler),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Fill the (restored, empty) scheduler's rungs with what was recorded before the interruption.

        A rung is matched by its milestone, so a state from a scheduler with other settings fills nothing.
        """
        for bracket, saved in zip(asha_brackets(self.scheduler), state.get("brackets", [])):
            by_milestone = {float(milestone): values for milestone, values in saved}
            for milestone, recorded in bracket_rungs(bracket):  # ASHA's own dicts: filled in place
                for trial, value in by_milestone.get(float(milestone), {}).items():
                    recorded.setdefault(trial, value)
        set_asha_num_stopped(self.scheduler, max(asha_num_stopped(self.scheduler), int(state.get("num_stopped", 0))))


def rungs_document(scheduler: AsyncHyperBandScheduler, metric: str, time_attr: str) -> dict[str, Any]:
    """Every milestone in ascending order with the trials' values and the cut-off, in the metric's own sign."""
    sign = asha_metric_sign(scheduler) or 1.0  # ASHA records metric * sign so that higher is always better
    brackets = []
    for bracket in asha_brackets(scheduler):
        rungs = []
        for milestone, recorded in sorted(bracket_rungs(bracket), key=lambda rung: rung[0]):
            cutoff = bracket_cutoff(bracket, recorded)
            rungs.append({
                "milestone": milestone,
                "trials": {trial: sign * value for trial, value in sorted(recorded.items())},
                "cutoff": None if cutoff is None or not np.isfinite(cutoff) else float(sign * cutoff),
            })
        brackets.append({"rungs": rungs})
    return {"metric": metric, "time_attr": time_attr, "reduction_factor": asha_reduction_factor(scheduler),
            "stopped": asha_num_stopped(scheduler), "brackets": brackets}


def write_rungs(rungs: AshaRungs, metric: str, time_attr: str, run_path: str) -> Path:
    """``asha_rungs.json`` in the run folder (uploaded to a run folder that is a URI); returns the local file."""
    local = Path(tempfile.mkdtemp() if is_remote(run_path) else run_path) / RUNGS_FILE
    local.write_text(json.dumps(rungs_document(rungs.scheduler, metric, time_attr), indent=1))
    if is_remote(run_path):
        upload(local, run_path, RUNGS_FILE)
    return local
