"""Stop a sweep whose first trials all fail the same way, instead of spending its budget on it.

A wrong path, a missing weights file or a broken environment makes every trial fail with one
error; Tune would go on starting new trials until ``num_samples`` ran out. ``FailFast`` watches
the trials that end before any trial has reported a result: when the first ``first`` of them all
failed with the same message, it stops the experiment (as a Tune ``Stopper``) and keeps the
message for the driver to print once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.stopper import Stopper

from medtune.search.tracking.trial_runs import trial_error_message

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class FailFast(tune.Callback, Stopper):
    """Tune callback and stopper in one: the callback sees trial errors, the stopper ends the run."""

    def __init__(self, first: int) -> None:
        self.first = max(1, first)
        self.errors: list[str] = []
        self.any_result = False
        self.reason: str | None = None

    def on_trial_result(self, iteration: int, trials: list["Trial"], trial: "Trial", result: dict, **info: Any) -> None:
        self.any_result = True

    def on_trial_error(self, iteration: int, trials: list["Trial"], trial: "Trial", **info: Any) -> None:
        if self.any_result or self.reason is not None:
            return
        self.errors.append(trial_error_message(trial))
        if len(self.errors) >= self.first and len(set(self.errors)) == 1:
            self.reason = (f"the first {len(self.errors)} trials all failed with the same error before any reported "
                           f"a result, so the sweep was stopped: {self.errors[0]}")

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.reason is not None


def fail_fast_for(num_samples: int, max_concurrent: int) -> FailFast:
    """Judge on as many trials as run at once (at least two), never more than the sweep has."""
    return FailFast(min(num_samples, max(2, max_concurrent)))
