"""Data path: how long a trial waits for data, first on a node and later.

A trial waits for data twice: once before its first epoch (``data_load_seconds``: decode the
source and resize into the node's decode-once cache, or open the cache when another trial did
that already), and inside every epoch (``data_seconds``: indexing the cached split, converting,
resizing up to the model's minimum input, augmenting, normalising; timm's ``data_time``). Both
are metrics the training function reports. Three trials of the demo's configuration run here:

- ``first``: a new process with an empty cache directory (the first trial on a node decodes),
- ``later, new process``: a new process on the filled cache (a later trial in a new worker),
- ``later, same process``: a second trial in that same process (Ray Tune's reused actors).

Reported per trial: (load + batch waits) / (load + epoch time), and batch waits / epoch time.
Target for later trials: <= 2% of epoch time.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/data_path.py --epochs 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
from pathlib import Path

#: The demo sweep's kind of trial (spaces/demo.yaml): 28 px, ImageNet MobileNetV2, its augmentation.
CONFIGS = {
    "mobilenetv2_100": {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "frozen_depth": 0,
                        "dropout": 0.3, "batch_size": 64, "lr": 2e-3, "augment_rotation": 10,
                        "augment_shift": 0.05, "augment_scale": 0.1, "image_size": 28},
    "simple_cnn": {"architecture": "simple_cnn", "pretrained": "none", "dropout": 0.3, "batch_size": 64,
                   "lr": 2e-3, "augment_rotation": 10, "augment_shift": 0.05, "augment_scale": 0.1,
                   "image_size": 28},
}


def _trials_in_one_process(config: dict, cache_dir: str, epochs: int, runs: int) -> list[dict]:
    """``runs`` trials one after another in this (new) process, as a reused Ray actor would run them."""
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.reporters import LocalReporter
    from medtune.trainables.train import run_training

    out = []
    for _ in range(runs):
        cfg = TrialConfig.from_dict({**config, "epochs": epochs, "cache_dir": cache_dir,
                                     "data_dir": os.environ.get("MEDTUNE_DATA_DIR"),
                                     "weights_dir": os.environ.get("MEDTUNE_WEIGHTS_DIR")})
        reporter = LocalReporter(tempfile.mkdtemp(prefix="medtune-datapath-"), num_threads=1)
        run_training(cfg, reporter)
        history = reporter.history
        load = float(history[0]["data_load_seconds"])
        waits = sum(float(m["data_seconds"]) for m in history)
        epoch = sum(float(m["epoch_seconds"]) for m in history)
        out.append({"data_load_seconds": load, "batch_wait_seconds": waits, "epoch_seconds": epoch,
                    "share_with_load": (load + waits) / (load + epoch), "share_in_epochs": waits / epoch})
    return out


def _in_new_process(config: dict, cache_dir: str, epochs: int, runs: int) -> list[dict]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_trials_in_one_process, (config, cache_dir, epochs, runs))


def measure(name: str, epochs: int) -> dict:
    cache_dir = tempfile.mkdtemp(prefix="medtune-datapath-cache-")
    config = CONFIGS[name]
    first = _in_new_process(config, cache_dir, epochs, 1)[0]
    later_new, later_same = _in_new_process(config, cache_dir, epochs, 2)
    return {"first": first, "later, new process": later_new, "later, same process": later_same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", default="benchmarks/results/data_path.json")
    args = parser.parse_args()
    results = {name: measure(name, args.epochs) for name in args.configs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"epochs": args.epochs, "results": results}, indent=1))
    print(f"\n{'config':<17} {'trial':<21} {'load s':>7} {'waits s':>8} {'epochs s':>9} {'share (load+waits)':>19} "
          f"{'share in epochs':>16}")
    for name, trials in results.items():
        for kind, r in trials.items():
            print(f"{name:<17} {kind:<21} {r['data_load_seconds']:7.2f} {r['batch_wait_seconds']:8.2f} "
                  f"{r['epoch_seconds']:9.1f} {100 * r['share_with_load']:18.2f}% {100 * r['share_in_epochs']:15.2f}%")
    print("target: <= 2% of epoch time for later trials")


if __name__ == "__main__":
    main()
