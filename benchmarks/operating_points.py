"""Which operating point should ``medtune final`` default to, and does calibrating the scores first help?

A clinician reads a two-class model at one threshold, so the default rule must not fail on data the
team never saw (on a held-back breast-ultrasound set, 0.5 on a class-weighted model's scores called
half the malignant cases benign). This benchmark trains models the way ``medtune final`` does and
keeps their scores, then scores every rule on them:

* tasks (``medical_tasks.py``): PneumoniaMNIST full and its 546/78 subsample, the brain-MRI set as
  tumour vs ``notumor`` full and subsampled, and (``--synthetic``) binormal score tasks whose test
  negatives are shifted; multi-class: the brain-MRI set's four classes, full and subsampled;
* models: MobileNetV2 from ImageNet weights and the plain CNN from scratch (what won the breast
  search), with the demo space's fixed settings and budget (27,000 images), class-weighted loss;
* held-out scores as ``final`` gets them: a small set's 5-fold out-of-fold predictions over
  train + val (then the model trains on all of it), else the held-out half of val;
* every rule of ``medtune.trainables.operating_point`` on the calibrated held-out scores, then test
  balanced accuracy, sensitivity and specificity; the target is a default whose test balanced
  accuracy is within 0.02 of the best rule's on every task, with min(sensitivity, specificity)
  >= 0.75 wherever test AUC >= 0.90;
* ECE on test before and after calibration; for the small tasks, the test AUC and accuracy of the
  k fold models averaged with (or instead of) the full model.

Two phases: ``--train`` trains and saves scores under ``--work`` (resumable, one file per model;
``--shard i/n`` splits the jobs over processes); without it, the saved scores are evaluated and
written to ``results/operating_points.json``.

    .venv/bin/python benchmarks/operating_points.py --train --shard 0/2 &
    .venv/bin/python benchmarks/operating_points.py --train --shard 1/2; wait
    .venv/bin/python benchmarks/operating_points.py --synthetic
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from medical_tasks import Task, tasks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "operating_points.json"
#: The demo space's fixed settings and budget, so the models are the kind a search returns.
COMMON = {"pretrained": "imagenet", "frozen_depth": 0, "dropout": 0.4, "batch_size": 64, "lr": 1e-3,
          "optimizer": "adamw", "weight_decay": 1e-4, "class_weighted": True, "augment_rotation": 10,
          "augment_shift": 0.05, "augment_scale": 0.1, "budget_unit": "images", "budget": 27000, "image_size": 28}
ARCHITECTURES = ("mobilenetv2_100", "simple_cnn")
FOLDS = 5
#: (task, architecture, seeds): the small tasks get more seeds, their held-out scores are noisier.
PLAN = [
    ("pneumonia-full", "mobilenetv2_100", (0, 1)), ("pneumonia-full", "simple_cnn", (0, 1)),
    ("brain-full", "mobilenetv2_100", (0, 1)), ("brain-full", "simple_cnn", (0, 1)),
    ("pneumonia-small", "mobilenetv2_100", (0, 1, 2)), ("pneumonia-small", "simple_cnn", (0, 1)),
    ("brain-small", "mobilenetv2_100", (0, 1, 2)), ("brain-small", "simple_cnn", (0, 1)),
    ("brain4-full", "mobilenetv2_100", (0,)), ("brain4-small", "mobilenetv2_100", (0, 1)),
]


def jobs() -> list[tuple[str, str, int]]:
    return [(task, arch, seed) for task, arch, seeds in PLAN for seed in seeds]


def score_file(work: Path, task: str, arch: str, seed: int) -> Path:
    return work / "scores" / f"{task}-{arch}-s{seed}.npz"


def _config(task: Task, arch: str, seed: int) -> dict[str, Any]:
    config = {**COMMON, **task.data, "architecture": arch, "seed": seed}
    if arch == "simple_cnn":
        config["pretrained"] = "none"
    if os.environ.get("MEDTUNE_WEIGHTS_DIR"):
        config["weights_dir"] = os.environ["MEDTUNE_WEIGHTS_DIR"]
    return config


def train_one(work: Path, task_name: str, arch: str, seed: int) -> Path:
    """Train as ``final`` does and save held-out, test and (small tasks) fold-model test probabilities."""
    import torch

    from medtune.search.run.final_training import _train, cv_final_splits, final_splits
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.data import DataConfig, load_splits
    from medtune.trainables.evaluate import predict_split

    torch.set_num_threads(1)
    task = tasks(work, seed, [task_name])[0]
    config = _config(task, arch, seed)
    splits = load_splits(DataConfig.from_trial_values(config))
    scratch = Path(tempfile.mkdtemp(prefix="op-points-", dir=work))
    started = time.perf_counter()
    fold_test = None
    if task.small:
        cv_cfg = TrialConfig.from_dict({**config, "cv_folds": FOLDS})
        cv = _train(cv_cfg, splits, scratch / "folds", f"{task_name} {arch} folds")
        held_probs, held_labels = cv.oof_probs, cv.oof_labels
        fold_test = np.stack([predict_split(m, cv_cfg, splits.test)[0] for m in cv.fold_models])
        data = cv_final_splits(splits)
    else:
        data = final_splits(splits, 0.5, seed=seed)
    cfg = TrialConfig.from_dict({**config, "cv_folds": None})
    outcome = _train(cfg, data, scratch / "all", f"{task_name} {arch}")
    if not task.small:
        held_probs, held_labels = predict_split(outcome.model, cfg, data.val)
    test_probs, test_labels = predict_split(outcome.model, cfg, data.test)
    target = score_file(work, task_name, arch, seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"heldout_probs": held_probs, "heldout_labels": held_labels, "test_probs": test_probs,
              "test_labels": test_labels, "train_counts": np.bincount(data.train.labels, minlength=splits.num_classes),
              "class_names": np.array(splits.class_names), "seconds": np.array(time.perf_counter() - started)}
    if fold_test is not None:
        arrays["fold_test_probs"] = fold_test
    np.savez(target.with_suffix(".tmp.npz"), **arrays)
    target.with_suffix(".tmp.npz").replace(target)
    return target


def run_training_jobs(work: Path, shard: tuple[int, int]) -> None:
    index, count = shard
    for i, (task, arch, seed) in enumerate(jobs()):
        if i % count != index or score_file(work, task, arch, seed).exists():
            continue
        started = time.perf_counter()
        train_one(work, task, arch, seed)
        print(f"[{datetime.datetime.now():%H:%M:%S}] {task} {arch} seed {seed}: {time.perf_counter() - started:.0f} s",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench/operating_points"))
    parser.add_argument("--train", action="store_true", help="train the plan's models and save their scores")
    parser.add_argument("--shard", default="0/1", help="i/n: this process trains every n-th job from the i-th")
    parser.add_argument("--synthetic", action="store_true", help="also score the rules on binormal shifted tasks")
    parser.add_argument("--draws", type=int, default=200, help="held-out sets drawn per synthetic case")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.train:
        index, count = (int(x) for x in args.shard.split("/"))
        run_training_jobs(args.work, (index, count))
        return
    from operating_points_eval import evaluate  # the evaluation half, kept apart: it needs no torch

    evaluate(args)


if __name__ == "__main__":
    main()
