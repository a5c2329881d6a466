"""The lean copy of a trial's checkpoint that MLflow gets: weights + config + metrics, no optimizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medtune.trainables.config import TrialConfig
from medtune.trainables.data import SplitArrays
from medtune.trainables.train import build_fold_run, build_trial_model, save_checkpoint
from medtune.trainables.weights_export import META_FILE, WEIGHTS_FILE, export_weights, load_exported


def _runs(cfg: TrialConfig, folds: int) -> list:
    rng = np.random.default_rng(0)
    split = SplitArrays(images=rng.integers(0, 255, (8, 32, 32, 1), dtype=np.uint8), labels=np.array([0, 1] * 4))
    runs = []
    for fold in range(folds):
        torch.manual_seed(fold)
        run = build_fold_run(cfg, split, split, None, 2, 2, torch.device("cpu"))
        images, labels = next(iter(run.train_batches))
        run.criterion(run.model(images), labels).backward()
        run.optimizer.step()
        runs.append(run)
    return runs


@pytest.mark.parametrize("folds", [1, 3])
def test_export_keeps_the_weights_and_drops_the_optimizer_state(tmp_path: Path, folds: int):
    cfg = TrialConfig.from_dict({"architecture": "simple_cnn", "pretrained": "none", "image_size": 32,
                                 "batch_size": 4, "epochs": 2, "optimizer": "adamw", "channels_last": False,
                                 "data_source": "synthetic"})
    runs = _runs(cfg, folds)
    ckpt, lean = tmp_path / "ckpt", tmp_path / "lean"
    ckpt.mkdir()
    save_checkpoint(ckpt, runs=runs, epoch=2, cfg=cfg, metrics={"epoch": 2, "val_auc": 0.75},
                    class_names=("normal", "pneumonia"))
    files = export_weights(ckpt, lean)
    assert sorted(p.name for p in files) == sorted([WEIGHTS_FILE, META_FILE])
    weights, meta = load_exported(lean)
    expected = runs[0].model.state_dict()  # a cross-validated checkpoint exports its first fold
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert meta["epoch"] == 2 and meta["metrics"]["val_auc"] == 0.75 and meta["class_names"] == ["normal", "pneumonia"]
    assert meta["folds"] == (folds if folds > 1 else None)
    model = build_trial_model(TrialConfig.from_dict(meta["config"]), 2)
    model.load_state_dict(weights)  # strict: the export is a whole model
    full = (ckpt / "checkpoint.pt").stat().st_size
    assert (lean / WEIGHTS_FILE).stat().st_size < full / (2 * folds)  # AdamW's two moments per weight are gone
    assert "optimizer" not in json.loads((lean / META_FILE).read_text())


def test_weights_that_share_memory_are_exported(tmp_path: Path):
    """safetensors refuses shared tensors (tied weights): the export writes own copies."""
    shared = torch.randn(4, 4)
    state = {"model": {"a.weight": shared, "b.weight": shared, "c.view": shared[:2]}, "epoch": 1, "config": {},
             "metrics": {}, "class_names": ["x", "y"]}
    (tmp_path / "ckpt").mkdir()
    torch.save(state, tmp_path / "ckpt" / "checkpoint.pt")
    export_weights(tmp_path / "ckpt", tmp_path / "lean")
    weights, _ = load_exported(tmp_path / "lean")
    assert torch.equal(weights["a.weight"], shared) and torch.equal(weights["c.view"], shared[:2])
