"""How much of the trials' time does MLflow logging take?

Runs a sweep from a space file (the demo by default) and compares the driver's time inside MLflow
calls (per-epoch metric batches, run creation, params, tags, the best checkpoint's upload at the
end of each trial) with the trials' total epoch time. Trials never call MLflow themselves; they
only wait on it if the driver is slower to take a result than an epoch lasts, so this share is an
upper bound on what logging can cost them. Target: under 2%.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/mlflow_overhead.py spaces/demo.yaml --set search.num_samples=6
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from medtune.search.run.sweep import run_sweep
from medtune.search.spec.loader import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", nargs="?", default="spaces/demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tracking-uri", help="default: a fresh sqlite store in a temp folder")
    parser.add_argument("--out", default="benchmarks/results/mlflow_overhead.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medtune-mlflow-overhead-"))
    overrides = [f"storage={work / 'ray_results'}", f"mlflow.artifact_location={work / 'artifacts'}",
                 f"mlflow.tracking_uri={args.tracking_uri or f'sqlite:///{work}/mlruns.db'}", *args.overrides]
    spec = load_spec(args.space, overrides)
    started = time.perf_counter()
    outcome = run_sweep(spec, run_name="mlflow-overhead")
    wall = time.perf_counter() - started
    epoch_seconds = sum(float(r.metrics_dataframe["epoch_seconds"].sum()) for r in outcome.results
                        if r.metrics_dataframe is not None and "epoch_seconds" in r.metrics_dataframe)
    epochs = sum(len(r.metrics_dataframe) for r in outcome.results if r.metrics_dataframe is not None)
    share = outcome.mlflow_seconds / epoch_seconds
    result = {"space": args.space, "overrides": args.overrides, "tracking_uri": spec.mlflow.tracking_uri,
              "trials": len(outcome.entries), "epochs": epochs, "trial_epoch_seconds": epoch_seconds,
              "mlflow_seconds": outcome.mlflow_seconds, "share": share, "sweep_wall_seconds": wall}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nMLflow logging: {outcome.mlflow_seconds:.2f} s of driver time for {epochs} epochs of "
          f"{len(outcome.entries)} trials ({epoch_seconds:.1f} s of epoch time): {100 * share:.2f}% (target < 2%)")


if __name__ == "__main__":
    main()
