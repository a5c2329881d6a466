"""A trial's checkpoint reduced to what a reader of the model needs: weights, config, metrics.

Ray keeps the full checkpoint (model, optimizer state, LR schedule, random generators) because a
restarted trial must continue exactly where it stopped. The copy logged to MLflow serves someone
who wants the model, and the optimizer state (two tensors per weight for Adam) would triple it:
1.6 GB per VGG16-BN trial, times every trial of a sweep. The weights go into a safetensors file,
which loads without unpickling anything; the rest into a small JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from medtune.trainables.checkpoints import checkpoint_model_state, load_checkpoint

WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"


def export_weights(checkpoint_folder: str | Path, out: str | Path) -> list[Path]:
    """Write ``model.safetensors`` and ``checkpoint.json`` for the checkpoint in ``checkpoint_folder``.

    A cross-validated trial's checkpoint holds one model per fold; the first fold's is exported,
    the one ``checkpoint_model_state`` (and so the sweep's best model) uses.
    """
    state = load_checkpoint(checkpoint_folder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Own, contiguous copies: safetensors refuses tensors that share memory (tied or viewed weights).
    weights = {name: tensor.detach().clone().contiguous() for name, tensor in checkpoint_model_state(state).items()}
    save_file(weights, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    meta = {"epoch": state.get("epoch"), "config": state.get("config"), "metrics": state.get("metrics"),
            "class_names": state.get("class_names"), "folds": len(state.get("folds") or []) or None,
            "exported_fold": 0 if state.get("folds") else None}
    (out / META_FILE).write_text(json.dumps(meta, indent=1, default=float))
    return [out / WEIGHTS_FILE, out / META_FILE]


def load_exported(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata) of an exported checkpoint; ``build_trial_model`` + ``load_state_dict``
    turns them back into the model."""
    folder = Path(folder)
    return load_file(str(folder / WEIGHTS_FILE)), json.loads((folder / META_FILE).read_text())
