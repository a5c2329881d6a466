"""How big is a trial's best-checkpoint artifact in MLflow: Ray's checkpoint vs the weights-only export?

Ray's checkpoint holds the model, the optimizer state (AdamW keeps two tensors per weight), the LR
schedule and the random generators (``checkpoint.pt``): what resuming a trial needs. The MLflow
callback logs only the weights (``model.safetensors``) and a small ``checkpoint.json``
(``medtune.trainables.weights_export``). For every architecture in the registry, a real training
state is built the way a trial builds it (``build_fold_run``: the trial's model, optimizer and
schedule; frozen depth 0, so every weight has optimizer state: the worst case), after one real
AdamW step, saved by the trial's own ``save_checkpoint`` and exported by the callback's own
``export_weights``. Sizes do not depend on the image size or on ImageNet weights, so no data or
weights are read.

    .venv/bin/python benchmarks/checkpoint_artifact_size.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medtune.trainables.checkpoints import save_checkpoint
from medtune.trainables.config import TrialConfig
from medtune.trainables.data import SplitArrays
from medtune.trainables.folds import build_fold_run
from medtune.trainables.models import get_architecture, list_architectures
from medtune.trainables.weights_export import export_weights

RESULTS = Path(__file__).resolve().parent / "results"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(architecture: str, optimizer: str) -> dict:
    size = max(32, get_architecture(architecture).min_input_size)
    cfg = TrialConfig.from_dict({"architecture": architecture, "pretrained": "none", "frozen_depth": 0,
                                 "optimizer": optimizer, "image_size": size, "batch_size": 2, "epochs": 1,
                                 "channels_last": False, "data_source": "synthetic"})
    rng = np.random.default_rng(0)
    split = SplitArrays(images=rng.integers(0, 255, (4, size, size, 1), dtype=np.uint8), labels=np.array([0, 1, 0, 1]))
    run = build_fold_run(cfg, split, split, None, 2, 1, torch.device("cpu"))
    images, labels = next(iter(run.train_batches))
    run.optimizer.zero_grad()
    run.criterion(run.model(images), labels).backward()
    run.optimizer.step()  # the optimizer state exists from the first step on
    with tempfile.TemporaryDirectory() as ckpt, tempfile.TemporaryDirectory() as lean:
        save_checkpoint(Path(ckpt), runs=[run], epoch=1, cfg=cfg, metrics={"epoch": 1, "val_auc": 0.5},
                        class_names=("normal", "pneumonia"))
        started = time.perf_counter()
        export_weights(ckpt, lean)
        seconds = time.perf_counter() - started
        before, after = folder_bytes(Path(ckpt)), folder_bytes(Path(lean))
    params = sum(p.numel() for p in run.model.parameters())
    return {"architecture": architecture, "optimizer": optimizer, "parameters": params,
            "checkpoint_bytes": before, "artifact_bytes": after, "ratio": after / before,
            "export_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="*", default=list_architectures())
    parser.add_argument("--optimizer", default="adamw", help="the demo's (and most spaces') optimizer")
    parser.add_argument("--out", default=str(RESULTS / "checkpoint_artifact_size.json"))
    args = parser.parse_args()
    rows = []
    for architecture in args.architectures:
        row = measure(architecture, args.optimizer)
        rows.append(row)
        print(f"{architecture:24} {row['parameters'] / 1e6:7.1f} M params  "
              f"checkpoint {row['checkpoint_bytes'] / 2**20:8.1f} MiB"
              f"  artifact {row['artifact_bytes'] / 2**20:8.1f} MiB  "
              f"({row['ratio']:.2f}x, export {row['export_seconds']:.2f} s)",
              flush=True)
    Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "optimizer": args.optimizer,
                                          "rows": rows}, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
