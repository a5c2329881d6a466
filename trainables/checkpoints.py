"""A trial's checkpoints: when one is due, what it holds, and reading it back without unpickling code.

A checkpoint holds plain tensors and primitives only (``torch.load(weights_only=True)`` reads it):
each fold run's model, optimizer and LR-schedule state, the epoch, the config, the epoch's metrics,
the class names and every random generator's state, so a resumed run continues exactly where the
interrupted one was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medtune.trainables.config import TrialConfig
from medtune.trainables.reporters import CHECKPOINT_FILE

#: A long epoch plan (a step budget on a small data set) checkpoints about this often per trial,
#: plus its last epoch; short plans checkpoint every epoch, as Tune's resume expects.
CHECKPOINTS_PER_TRIAL = 20


def checkpoint_due(epoch: int, epochs: int, since_last_s: float | None = None, interval_s: float = 0.0) -> bool:
    """Every epoch of a short plan; about ``CHECKPOINTS_PER_TRIAL`` of a long one, and its last.

    Between the first and the last, at least ``interval_s`` after this process's previous
    checkpoint (``since_last_s``; ``None``: there was none): with short epochs a checkpoint every
    epoch makes Tune snapshot the whole experiment several times a second (``TuneReporter``). The
    first is kept so that a trial ASHA stops at its first rung still leaves one, the last so that
    a finished trial's final weights are there to be its best checkpoint.
    """
    every = max(1, -(-epochs // CHECKPOINTS_PER_TRIAL))
    if epoch >= epochs:
        return True
    return epoch % every == 0 and (since_last_s is None or since_last_s >= interval_s)


def save_checkpoint(folder: Path, *, runs: list[Any], epoch: int, cfg: TrialConfig,
                    metrics: dict[str, Any], class_names: tuple[str, ...]) -> None:
    """Plain tensors and primitives only, so ``torch.load(weights_only=True)`` reads it back.

    One model: ``model``/``optimizer``/``lr_schedule`` at the top level. Cross-validated: a
    ``folds`` list of those, one per fold.
    """
    states = [run.state() for run in runs]
    state: dict[str, Any] = states[0] if len(states) == 1 else {"folds": states}
    torch.save(
        {
            **state,
            "epoch": epoch,
            "config": cfg.to_dict(),
            "metrics": metrics,
            "class_names": list(class_names),
            # Dropout draws from the global generators: restoring them makes a resumed run match an
            # uninterrupted one exactly, on the CPU and (with every GPU's generator) on CUDA.
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": cuda_rng_state(),
        },
        folder / CHECKPOINT_FILE,
    )


def cuda_rng_state() -> list[torch.Tensor] | None:
    """Every visible GPU's random generator state (None without CUDA)."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def restore_cuda_rng(states: list[torch.Tensor] | None) -> None:
    if states is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states)


def load_checkpoint(folder: str | Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling code."""
    return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def checkpoint_model_state(state: dict[str, Any]) -> dict[str, Any]:
    """The model weights of a checkpoint (a cross-validated one: its first fold's)."""
    return state["model"] if "model" in state else state["folds"][0]["model"]
