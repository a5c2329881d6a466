"""ASHA savings: the same configurations with and without early stopping.

The demo sweep's space (spaces/demo.yaml) runs twice with Optuna's seeded random sampler, which
draws the same configurations whatever the results are: once with ASHA and once with FIFO (every
trial runs all its epochs). The script checks that both runs trained the same configurations,
then reports epochs used with ASHA / epochs without, and the best val AUC of each. Target:
<= 0.35 of the epochs at <= 0.005 AUC loss.

Defaults: 18 configurations, up to 8 epochs, ASHA grace period 1 and reduction factor 4 (rungs at
epochs 1 and 4). The demo's own bracket (6 epochs, factor 3: rungs at 1 and 3) cannot reach the
target: even synchronous halving would spend (1 + 2/3 + 3/9) / 6 = 0.33 of FIFO's epochs, and
asynchronous ASHA promotes more than a third at a rung while few results have arrived (the first
trial at each rung always goes on). ``--samples 12 --max-t 6 --reduction-factor 3`` runs the
demo's own bracket.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/asha_savings.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from demo_sweeps import run_demo  # a sibling module: this script's folder is first on sys.path


def _configs(run: dict) -> list[str]:
    return sorted(json.dumps(t["config"], sort_keys=True) for t in run["trials"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-t", type=int, default=8, help="epochs per trial (the demo's: 6)")
    parser.add_argument("--reduction-factor", type=float, default=4, help="ASHA's (the demo's: 3)")
    parser.add_argument("--out", default="benchmarks/results/asha_savings.json")
    args = parser.parse_args()
    overrides = (f"search.scheduler.max_t={args.max_t}", f"search.scheduler.reduction_factor={args.reduction_factor}")
    asha = run_demo("random", args.seed, "asha", args.samples, overrides)
    fifo = run_demo("random", args.seed, "fifo", args.samples, overrides)
    same = _configs(asha) == _configs(fifo)
    result = {"same_configurations": same, "asha": asha, "fifo": fifo,
              "epoch_ratio": asha["epochs_run"] / fifo["epochs_run"],
              "auc_loss": fifo["best_val_auc"] - asha["best_val_auc"],
              "wall_ratio": asha["fit_seconds"] / fifo["fit_seconds"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nsame {args.samples} configurations in both runs: {same}")
    print(f"ASHA: {asha['epochs_run']} epochs, best val AUC {asha['best_val_auc']:.4f}, "
          f"Tuner.fit {asha['fit_seconds']:.0f} s")
    print(f"FIFO: {fifo['epochs_run']} epochs, best val AUC {fifo['best_val_auc']:.4f}, "
          f"Tuner.fit {fifo['fit_seconds']:.0f} s")
    print(f"epochs ASHA / FIFO = {result['epoch_ratio']:.3f} (target <= 0.35); AUC loss {result['auc_loss']:+.4f} "
          f"(target <= 0.005); wall ratio {result['wall_ratio']:.2f}")
    if not same:
        sys.exit("the two runs trained different configurations: the comparison does not hold")


if __name__ == "__main__":
    main()
