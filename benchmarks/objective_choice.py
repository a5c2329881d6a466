"""Which validation metric ranks configurations the way the held-out test set does?

Trains a fixed, varied set of configurations on PneumoniaMNIST (the demo's setting: 28 px, full
train split) with the same training function the sweep uses, and after every epoch scores the
checkpoint on val and on test. For each candidate objective (val_loss, val_auc, val_balanced_acc)
it picks each run's best epoch by that objective, then asks across runs: how well does the
objective's value rank the runs' test AUC (Spearman), and what test AUC does the run it would
pick as the winner reach? The test split is used here only to judge objectives, never by a sweep.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/objective_choice.py --epochs 4 --out benchmarks/results/objective_choice.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from medtune.trainables.config import TrialConfig
from medtune.trainables.evaluate import model_from_checkpoint, predict_split
from medtune.trainables.metrics import classification_metrics
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import run_training

CANDIDATES = {"val_loss": "min", "val_auc": "max", "val_balanced_acc": "max"}

# Varied on purpose: architectures, pretrained vs scratch, frozen depth, learning rates, dropout.
CONFIGS = [
    {"architecture": "simple_cnn", "lr": 1e-3, "dropout": 0.3, "batch_size": 64},
    {"architecture": "simple_cnn", "lr": 3e-3, "dropout": 0.5, "batch_size": 32},
    {"architecture": "simple_cnn", "lr": 3e-4, "dropout": 0.4, "batch_size": 128},
    {"architecture": "simple_cnn", "lr": 1e-3, "dropout": 0.3, "batch_size": 64, "class_weighted": False},
    {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "lr": 1e-3, "dropout": 0.3, "batch_size": 64},
    {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "lr": 3e-4, "dropout": 0.5, "batch_size": 32},
    {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "lr": 1e-3, "dropout": 0.4, "batch_size": 64,
     "frozen_depth": 3},
    {"architecture": "mobilenetv2_100", "pretrained": "none", "lr": 1e-3, "dropout": 0.3, "batch_size": 64},
    {"architecture": "tf_efficientnet_lite0", "pretrained": "imagenet", "lr": 1e-3, "dropout": 0.3, "batch_size": 64},
    {"architecture": "tf_efficientnet_lite0", "pretrained": "imagenet", "lr": 3e-3, "dropout": 0.5, "batch_size": 128},
    {"architecture": "tf_efficientnet_lite0", "pretrained": "imagenet", "lr": 1e-3, "dropout": 0.4, "batch_size": 64,
     "frozen_depth": 5},
    {"architecture": "resnet18", "pretrained": "none", "lr": 1e-3, "dropout": 0.3, "batch_size": 64},
]


class TestScoringReporter(LocalReporter):
    """A LocalReporter that also scores every epoch's checkpoint on the test split."""

    def __init__(self, *args, test_split, **kwargs):
        super().__init__(*args, **kwargs)
        self.test_split = test_split

    def report(self, metrics, checkpoint_dir):
        model, config = model_from_checkpoint(checkpoint_dir)
        probs, labels = predict_split(model, config, self.test_split)
        metrics = {**metrics, **classification_metrics(probs, labels, prefix="test_")}
        super().report(metrics, checkpoint_dir)


def run_one(index: int, overrides: dict, epochs: int, threads: int, workdir: Path) -> list[dict]:
    from medtune.trainables.data import DataConfig, load_splits

    config = TrialConfig.from_dict({
        "optimizer": "adamw", "epochs": epochs, "seed": index, "augment_rotation": 10, "augment_shift": 0.05,
        "augment_scale": 0.1, "data_dir": os.environ.get("MEDTUNE_DATA_DIR"),
        "weights_dir": os.environ.get("MEDTUNE_WEIGHTS_DIR"), **overrides,
    })
    test = load_splits(DataConfig.from_trial(config)).test
    reporter = TestScoringReporter(workdir / f"run{index}", test_split=test, num_threads=threads)
    run_training(config, reporter)
    return reporter.history


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for name, mode in CANDIDATES.items():
        chosen = []
        for run in runs:
            history = run["history"]
            pick = min(history, key=lambda m: m[name]) if mode == "min" else max(history, key=lambda m: m[name])
            chosen.append((pick[name], pick["test_auc"], pick["test_acc"]))
        values = np.array([c[0] for c in chosen]) * (-1 if mode == "min" else 1)  # higher = better
        test_auc = np.array([c[1] for c in chosen])
        test_acc = np.array([c[2] for c in chosen])
        order = np.argsort(-values, kind="stable")
        summary[name] = {
            "spearman_with_test_auc": float(spearmanr(values, test_auc).statistic),
            "spearman_with_test_acc": float(spearmanr(values, test_acc).statistic),
            "winner_test_auc": float(test_auc[order[0]]),
            "top3_mean_test_auc": float(test_auc[order[:3]].mean()),
            "distinct_values": int(len(np.unique(np.round(values, 4)))),
        }
    best_possible = max(max(m["test_auc"] for m in r["history"]) for r in runs)
    summary["best_test_auc_of_any_epoch"] = float(best_possible)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=len(CONFIGS), help="first N configurations only")
    parser.add_argument("--out", default="benchmarks/results/objective_choice.json")
    parser.add_argument("--workdir", default="/tmp/medtune-objective-choice")
    args = parser.parse_args()

    started = time.perf_counter()
    runs = []
    for i, overrides in enumerate(CONFIGS[: args.limit]):
        history = run_one(i, overrides, args.epochs, args.threads, Path(args.workdir))
        runs.append({"config": overrides, "history": history})
        last = history[-1]
        print(f"[{i + 1}/{args.limit}] {overrides} -> val_loss {last['val_loss']:.3f} val_auc {last['val_auc']:.4f} "
              f"test_auc {last['test_auc']:.4f}", flush=True)
    summary = summarise(runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "runs": runs, "epochs": args.epochs,
                                          "seconds": time.perf_counter() - started}, indent=1))
    print("\n| objective | Spearman vs test AUC | vs test acc | winner's test AUC | top-3 mean test AUC |")
    print("| --- | --- | --- | --- | --- |")
    for name in CANDIDATES:
        s = summary[name]
        print(f"| {name} | {s['spearman_with_test_auc']:.2f} | {s['spearman_with_test_acc']:.2f} | "
              f"{s['winner_test_auc']:.4f} | {s['top3_mean_test_auc']:.4f} |")
    print(f"best test AUC of any run and epoch: {summary['best_test_auc_of_any_epoch']:.4f}")


if __name__ == "__main__":
    main()
