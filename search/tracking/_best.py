"""Each trial's best epoch, as the MLflow callback follows the trial's results and checkpoints.

Two bests are kept, because a long epoch plan checkpoints sparsely: the best over every epoch is
what the leaderboard and ``medtune best`` rank by (the run's ``medtune.best_*`` tags and
``best_*`` metrics); the best among the epochs that came with a checkpoint is the checkpoint
logged as the run's ``best_checkpoint`` artifact. Values are compared by ``Objective``, so ties
keep the earlier epoch and a missing or non-finite value never counts.
"""

from __future__ import annotations

from typing import Any, Mapping

from medtune.trainables.objective import EPOCH, Objective

#: A trial's best so far: (the objective's value, its epoch).
Best = tuple[float, int]


class BestEpochs:
    """Per trial id: the best (value, epoch) over all epochs, and over checkpointed ones with the
    checkpoint itself (Tune's (path, filesystem) handle, which pickles with the callback's state)."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.best: dict[str, Best] = {}
        self.checkpointed: dict[str, Best] = {}
        self.checkpoints: dict[str, Any] = {}

    def add_result(self, trial_id: str, result: Mapping[str, Any], epoch: int) -> None:
        """One epoch's result, checkpointed or not."""
        value = result.get(self.objective.name)
        if self.objective.better(value, self._value(self.best, trial_id)):
            self.best[trial_id] = (float(value), epoch)

    def add_checkpoint(self, trial_id: str, result: Mapping[str, Any], checkpoint: Any) -> None:
        """A checkpoint and the result it came with (Tune processes it right after that result)."""
        value = result.get(self.objective.name)
        if self.objective.better(value, self._value(self.checkpointed, trial_id)):
            self.checkpointed[trial_id] = (float(value), int(result.get(EPOCH, 0)))
            self.checkpoints[trial_id] = checkpoint

    def checkpoint_epoch(self, trial_id: str) -> int | None:
        """The epoch of the best checkpoint, or None when the trial made none."""
        return self.checkpointed[trial_id][1] if trial_id in self.checkpointed else None

    def pop_checkpoint(self, trial_id: str) -> Any:
        """The best checkpoint, handed over once (to be logged when the trial ends)."""
        return self.checkpoints.pop(trial_id, None)

    @staticmethod
    def _value(bests: dict[str, Best], trial_id: str) -> float | None:
        return bests[trial_id][0] if trial_id in bests else None

    # -- part of the callback's state, saved with the experiment ---------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"best": dict(self.best), "checkpointed": dict(self.checkpointed),
                "best_checkpoint": dict(self.checkpoints)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.best.update(state.get("best", {}))
        self.checkpointed.update(state.get("checkpointed", {}))
        self.checkpoints.update(state.get("best_checkpoint", {}))
