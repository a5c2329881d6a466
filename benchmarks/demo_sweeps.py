"""Run the demo sweep (spaces/demo.yaml) with a chosen sampler, seed and scheduler; keep every epoch.

Shared by asha_savings.py and search_quality.py: both compare whole sweeps by the epochs they
spent and the best val AUC they reached, so each run is reduced to its trials' configurations
and the (time, trial, epoch, val_auc) of every reported epoch, in the order Tune received them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

#: These benchmarks count trials' work in epochs on PneumoniaMNIST: a 6-epoch budget with ASHA from
#: epoch 1 and selection on val (the demo itself counts images seen and cross-validates small sets).
EPOCH_BUDGET = ("search.scheduler.unit=epochs", "search.scheduler.max_t=6", "search.scheduler.grace_period=1",
                "search.cv=null")


def run_demo(sampler: str, seed: int, scheduler: str, samples: int,
             overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """One demo sweep in a fresh Ray instance, MLflow in a throwaway sqlite store.

    ``overrides`` are more ``--set`` items (``search.scheduler.max_t=8``), applied last.
    """
    import ray

    from medtune.search.run.sweep import run_sweep
    from medtune.search.spec.loader import load_spec

    work = Path(tempfile.mkdtemp(prefix="medtune-bench-"))
    name = f"{sampler}-{scheduler}-seed{seed}"
    spec = load_spec("spaces/demo.yaml", [
        *EPOCH_BUDGET, f"name={name}", f"search.num_samples={samples}", f"search.sampler.name={sampler}",
        f"search.sampler.seed={seed}", f"search.scheduler.name={scheduler}", f"storage={work / 'ray_results'}",
        f"mlflow.tracking_uri=sqlite:///{work}/mlruns.db", f"mlflow.artifact_location={work / 'art'}", *overrides])
    started = time.perf_counter()
    outcome = run_sweep(spec, run_name=name)
    wall = time.perf_counter() - started
    ray.shutdown()
    epochs: list[dict[str, Any]] = []
    trials = []
    for result in outcome.results:
        frame = result.metrics_dataframe
        trial_id = (result.metrics or {}).get("trial_id")
        config = {k: v for k, v in (result.config or {}).items() if k in spec.space}
        trials.append({"trial_id": trial_id, "config": config, "epochs": 0 if frame is None else len(frame)})
        if frame is None:
            continue
        for row in frame.itertuples():
            epochs.append({"time": int(row.timestamp), "trial_id": trial_id,  # Tune's timestamp: whole seconds
                           "epoch": int(row.epoch), "val_auc": float(row.val_auc)})
    epochs.sort(key=lambda e: (e["time"], e["trial_id"], e["epoch"]))
    best = max((e["val_auc"] for e in epochs), default=float("nan"))
    return {"name": name, "sampler": sampler, "seed": seed, "scheduler": scheduler, "samples": samples,
            "max_t": spec.search.scheduler.max_t, "reduction_factor": spec.search.scheduler.reduction_factor,
            "grace_period": spec.search.scheduler.grace_period, "wall_seconds": wall,
            "fit_seconds": outcome.fit_seconds,
            "epochs_run": len(epochs), "best_val_auc": best, "trials": trials, "history": epochs}


def best_so_far(history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(epochs spent, best val AUC so far) after every reported epoch, in arrival order."""
    out, best = [], float("-inf")
    for spent, e in enumerate(history, start=1):
        best = max(best, e["val_auc"])
        out.append((spent, best))
    return out
