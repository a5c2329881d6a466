"""What a medtune sweep adds to the cost of training.

1. Overhead: one configuration trained for E epochs (a) by the bare training function in this
   process (``run_training`` + ``LocalReporter``: data, model, loop, per-epoch checkpoint), and
   (b) as the only trial of a medtune sweep (Ray Tune trial process, Optuna TPE, ASHA, MLflow
   logging, Tune checkpoints). Reported: wall seconds per epoch of (b), measured as the trial's
   own ``time_total_s`` (from its start to its last result, process start-up excluded), over (a).
   ``--repeats`` alternates (a) and (b) so that drift of a noisy machine falls on both. While (b)
   trains, ``cpu_sampler`` records how many cores the other processes (Tune driver, raylet, GCS,
   Ray's helpers) take from the trial.
2. Sweep efficiency: for the demo sweep, the trials' summed ``time_total_s`` over (``Tuner.fit``
   wall time x concurrent slots); the same over the whole command's wall time (data preparation,
   Ray start-up, leaderboard, plots and model logging included) is reported beside it.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/sweep_efficiency.py --epochs 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cpu_sampler import CpuSampler  # sibling modules: this script's folder is first on sys.path
from demo_sweeps import EPOCH_BUDGET

from medtune.search.run.sweep import run_sweep
from medtune.search.spec.loader import load_spec
from medtune.trainables.config import TrialConfig
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import run_training

CONFIG = {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "frozen_depth": 0, "dropout": 0.3,
          "batch_size": 64, "lr": 2e-3, "optimizer": "adamw", "weight_decay": 1e-4, "class_weighted": True,
          "augment_rotation": 10, "augment_shift": 0.05, "augment_scale": 0.1, "image_size": 28}


def bare(epochs: int, threads: int, work: Path) -> dict:
    import os

    cfg = TrialConfig.from_dict({**CONFIG, "epochs": epochs, "data_dir": os.environ.get("MEDTUNE_DATA_DIR"),
                                 "weights_dir": os.environ.get("MEDTUNE_WEIGHTS_DIR")})
    started = time.perf_counter()
    reporter = LocalReporter(work / "bare", metric="val_auc", mode="max", num_threads=threads)
    run_training(cfg, reporter)
    wall = time.perf_counter() - started
    return {"wall": wall, "per_epoch": wall / epochs, "epoch_seconds": [m["epoch_seconds"] for m in reporter.history]}


def as_sweep(epochs: int, threads: int, work: Path) -> dict:
    fixed = {k: v for k, v in CONFIG.items() if k not in ("image_size", "dropout")}
    spec = load_spec("spaces/demo.yaml", [
        "name=overhead", "search.num_samples=1", "search.max_concurrent=1", f"resources.cpu={threads}",
        "search.scheduler.unit=epochs", f"search.scheduler.max_t={epochs}", "search.scheduler.grace_period=1",
        "search.cv=null", f"fixed={json.dumps(fixed)}",
        "space={dropout: {uniform: [0.3, 0.30001]}}", f"storage={work / 'rr1'}",
        f"mlflow.tracking_uri=sqlite:///{work}/overhead.db", f"mlflow.artifact_location={work / 'art1'}"])
    with CpuSampler() as sampler:
        outcome = run_sweep(spec, run_name="overhead")
    result = next(iter(outcome.results))
    total = float(result.metrics["time_total_s"])
    return {"time_total_s": total, "per_epoch": total / epochs,
            "epoch_seconds": list(result.metrics_dataframe["epoch_seconds"]), "cpu": sampler.result()}


def demo_efficiency(work: Path, samples: int) -> dict:
    spec = load_spec("spaces/demo.yaml", [*EPOCH_BUDGET, f"search.num_samples={samples}", f"storage={work / 'rr2'}",
                                          f"mlflow.tracking_uri=sqlite:///{work}/demo.db",
                                          f"mlflow.artifact_location={work / 'art2'}"])
    started = time.perf_counter()
    outcome = run_sweep(spec, run_name="efficiency")
    wall = time.perf_counter() - started
    busy = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in outcome.results)
    slots = spec.search.max_concurrent
    return {"wall": wall, "fit_seconds": outcome.fit_seconds, "trial_seconds": busy, "slots": slots,
            "efficiency": busy / (outcome.fit_seconds * slots), "efficiency_whole_command": busy / (wall * slots)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating bare / sweep pairs")
    parser.add_argument("--demo-samples", type=int, default=12)
    parser.add_argument("--skip-demo", action="store_true", help="the overhead pairs only (part 1)")
    parser.add_argument("--out", default="benchmarks/results/sweep_efficiency.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medtune-efficiency-"))

    import ray

    bares, sweeps = [], []
    for i in range(args.repeats):
        bares.append(bare(args.epochs, args.threads, work / f"pair{i}"))
        sweeps.append(as_sweep(args.epochs, args.threads, work / f"pair{i}"))
        ray.shutdown()
        print(f"pair {i}: bare {bares[-1]['per_epoch']:.2f} s, sweep {sweeps[-1]['per_epoch']:.2f} s per epoch; "
              f"other processes {sweeps[-1]['cpu'].get('other_cores', float('nan')):.3f} cores", flush=True)
    a = {"per_epoch": sum(r["per_epoch"] for r in bares) / len(bares), "runs": bares}
    b = {"per_epoch": sum(r["per_epoch"] for r in sweeps) / len(sweeps), "runs": sweeps}
    c = None if args.skip_demo else demo_efficiency(work, args.demo_samples)
    result = {"bare": a, "sweep": b, "overhead_ratio": b["per_epoch"] / a["per_epoch"], "demo": c}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\n1. per-epoch wall: bare {a['per_epoch']:.2f} s, in a sweep {b['per_epoch']:.2f} s: "
          f"ratio {result['overhead_ratio']:.3f} (target <= 1.05)")
    for i, run in enumerate(sweeps):
        print(f"   pair {i}: other processes used {run['cpu'].get('other_cores', float('nan')):.3f} cores while "
              f"the trial trained: {run['cpu'].get('other_by_process')}; the trial process by thread name: "
              f"{run['cpu'].get('trial_by_thread_name')}")
    if c is None:
        return
    print(f"2. demo sweep: trials busy {c['trial_seconds']:.1f} s over {c['fit_seconds']:.1f} s of Tuner.fit x "
          f"{c['slots']} slots: efficiency {c['efficiency']:.2f} (target >= 0.90); over the whole command "
          f"({c['wall']:.1f} s with data, Ray start-up, plots and model logging): {c['efficiency_whole_command']:.2f}")


if __name__ == "__main__":
    main()
