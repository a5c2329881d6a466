"""Bookkeeping at scale: N trivial trials through medtune's stack.

The same trivial trainable (three reported epochs, no training, no checkpoints) runs N times
(a) through plain Ray Tune: default random search, no callbacks, actors reused like medtune
    (``--default-plain-trials`` also times Ray Tune's default, a new process per trial), and
(b) through medtune's full stack: the Tuner built by ``medtune.search.run.tuner.build_tuner`` with
    MedtuneOptunaSearch (TPE) behind a ConcurrencyLimiter, ASHA, CheckpointConfig, the progress
    reporter, and the MLflow callback logging every trial as a child run to a sqlite store,
with the same concurrency. Reported: wall-time ratio (b)/(a); each run's driver RSS after
``--rss-at`` finished trials and at the end; for (b) that every trial has its MLflow child run,
and how long ``medtune best`` takes to rank them (its parent run is made as ``medtune sweep``
makes it). (a) runs first; each gets a fresh Ray instance.

    .venv/bin/python benchmarks/bookkeeping.py --trials 1000 --concurrency 4
    .venv/bin/python benchmarks/bookkeeping.py --trials 10000
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

EPOCHS = 3


def trivial(config: dict) -> None:
    from ray import tune

    rng = random.Random(hash(tuple(sorted((k, str(v)) for k, v in config.items()))))
    for epoch in range(1, EPOCHS + 1):
        tune.report({"val_auc": 0.5 + 0.4 * rng.random(), "val_loss": rng.random(), "epoch": epoch})


def rss_mib() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_probe(at_trials: int):
    """A Tune callback that notes the driver's RSS once ``at_trials`` trials have ended, and at the end."""
    from ray import tune

    class RssProbe(tune.Callback):
        def __init__(self) -> None:
            self.ended = 0
            self.at: float | None = None
            self.end: float | None = None

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.ended += 1
            if self.ended == at_trials:
                self.at = rss_mib()

        def on_experiment_end(self, trials, **info) -> None:
            self.end = rss_mib()

    return RssProbe()


def plain(trials: int, concurrency: int, work: Path, reuse_actors: bool | None,
          rss_at: int = 1000) -> tuple[float, Any]:
    import ray
    from ray import tune

    ray.init(address="local", num_cpus=concurrency, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(trivial, {"cpu": 1}),
        param_space={"lr": tune.loguniform(1e-4, 1e-2), "dropout": tune.uniform(0.3, 0.5),
                     "architecture": tune.choice(["simple_cnn", "resnet18"])},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=concurrency, reuse_actors=reuse_actors),
        run_config=tune.RunConfig(name=f"plain-{reuse_actors}", storage_path=str(work / "plain"), verbose=0,
                                  callbacks=[probe := rss_probe(rss_at)]),
    )
    started = time.perf_counter()
    tuner.fit()
    wall = time.perf_counter() - started
    ray.shutdown()
    return wall, probe


def medtune(trials: int, concurrency: int, work: Path, stock_node: bool = False,
            rss_at: int = 1000, study_storage: str | None = None) -> tuple[float, Any, dict[str, Any]]:
    """Wall seconds of medtune's stack; ``stock_node`` starts Ray with its default daemon timers
    instead of ``medtune.search.run.ray_node.init_ray``'s slower ones (which pace resource reports at 1 s)."""
    import ray

    from medtune.search.results.best import best_from_mlflow, entries_from_child_runs
    from medtune.search.results.leaderboard import leaderboard, write_leaderboard_csv
    from medtune.search.run.ray_node import init_ray
    from medtune.search.run.tuner import build_tuner
    from medtune.search.spec.sweep_spec import validate_spec
    from medtune.search.tracking.callback import MlflowTrialCallback
    from medtune.search.tracking.client import ensure_experiment, mlflow_client
    from medtune.search.tracking.sweep_reader import SweepReader
    from medtune.search.tracking.sweep_run import log_space_document, sweep_tags

    work.mkdir(parents=True, exist_ok=True)
    spec = validate_spec({
        "name": "bookkeeping", "data": {"source": "pneumoniamnist"}, "metric": {"name": "val_auc", "mode": "max"},
        "search": {"num_samples": trials, "max_concurrent": concurrency,
                   "sampler": {"name": "tpe", "seed": 0, "storage": study_storage},
                   "scheduler": {"name": "asha", "max_t": EPOCHS, "grace_period": 1, "reduction_factor": 3}},
        "resources": {"cpu": 1, "gpu": 0},
        "space": {"lr": {"loguniform": [1e-4, 1e-2]}, "dropout": {"uniform": [0.3, 0.5]},
                  "architecture": {"choice": ["simple_cnn", "resnet18"]}},
        "mlflow": {"tracking_uri": f"sqlite:///{work}/mlruns.db", "artifact_location": str(work / "art")},
        "storage": str(work / "medtune"),
    }, source="bookkeeping")
    if stock_node:
        ray.init(address="local", num_cpus=concurrency, include_dashboard=False, log_to_driver=False)
    else:
        init_ray(num_cpus=concurrency, log_to_driver=False)  # the local node exactly as `medtune sweep` starts it
    client = mlflow_client(spec.mlflow.tracking_uri)
    experiment = ensure_experiment(client, "bookkeeping", spec.mlflow.artifact_location)
    # The parent run as `medtune sweep` makes it (tags, space.yaml), so that `medtune best` can read it.
    parent = client.create_run(experiment, run_name="bookkeeping",
                               tags=sweep_tags(spec, "none", "bookkeeping")).info.run_id
    log_space_document(client, parent, spec)
    callback = MlflowTrialCallback(spec.mlflow.tracking_uri, experiment, parent, "val_auc", "max", EPOCHS)
    probe = rss_probe(rss_at)
    tuner = build_tuner(spec, "medtune", callbacks=[callback, probe], trainable=trivial)
    started = time.perf_counter()
    results = tuner.fit()
    fit = time.perf_counter() - started
    unlogged = callback.finish()  # MLflow calls run on the callback's thread: the sweep is done when it is
    wall = time.perf_counter() - started
    assert not unlogged, unlogged
    ray.shutdown()
    # The parent run's leaderboard, as the sweep logs it, and its end: what `medtune best` finds.
    with tempfile.TemporaryDirectory() as tmp:
        client.log_artifact(parent, str(write_leaderboard_csv(leaderboard(results, spec), spec,
                                                              Path(tmp) / "leaderboard.csv")))
    client.set_terminated(parent, status="FINISHED")
    reader = SweepReader(spec.mlflow.tracking_uri)
    children = reader.trial_runs(reader.parent("bookkeeping", parent, "bookkeeping"))
    best_started = time.perf_counter()
    doc, entries = best_from_mlflow("bookkeeping", spec.mlflow.tracking_uri)
    best_seconds = time.perf_counter() - best_started
    # The same ranking from the child runs' closing tags (a sweep whose leaderboard never reached MLflow).
    tags_started = time.perf_counter()
    from_runs = entries_from_child_runs(reader, reader.parent("bookkeeping", parent, "bookkeeping"), spec, 5,
                                        sweeps_objective=True)
    tags_seconds = time.perf_counter() - tags_started
    assert [e.trial_id for e in from_runs[:5]] == [e.trial_id for e in entries[:5]]
    extra = {"child_runs": len(children), "medtune_best_seconds": best_seconds, "medtune_best_ranked": len(entries),
             "best_from_child_run_tags_seconds": tags_seconds}
    print(f"medtune: Tuner.fit {fit:.1f} s, then {wall - fit:.1f} s until the MLflow thread drained; its calls "
          f"took {callback.seconds_logging:.1f} s in all; {len(children)} child runs; medtune best ranked "
          f"{len(entries)} trials in {best_seconds:.1f} s ({tags_seconds:.1f} s from the child runs' tags)", flush=True)
    return wall, probe, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--default-plain-trials", type=int, default=0,
                        help="also time plain Ray Tune with its default actor handling (a new process per "
                             "trial) on this many trials")
    parser.add_argument("--stock-node-too", action="store_true",
                        help="also time medtune's stack on a Ray node with Ray's default daemon timers")
    parser.add_argument("--rss-at", type=int, default=1000,
                        help="note the driver's RSS once this many trials have ended (and at the end)")
    parser.add_argument("--study-storage", default=None,
                        help="search.sampler.storage of medtune's run (default: the journal in the run folder; "
                             "'memory' keeps the Optuna study in memory)")
    parser.add_argument("--memory-study-too", action="store_true",
                        help="also time medtune's stack with the Optuna study in memory")
    parser.add_argument("--out", default="benchmarks/results/bookkeeping.json")
    args = parser.parse_args()
    import os

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    work = Path(tempfile.mkdtemp(prefix="medtune-bookkeeping-"))
    result: dict[str, Any] = {"trials": args.trials, "concurrency": args.concurrency, "rss_at": args.rss_at,
                              "study_storage": args.study_storage or "journal in the run folder"}
    if args.default_plain_trials:
        d, _ = plain(args.default_plain_trials, args.concurrency, work, None)
        result.update(default_plain_trials=args.default_plain_trials, default_plain_seconds=d)
        print(f"plain Ray Tune, default actors, {args.default_plain_trials} trials: {d:.1f} s", flush=True)
    a, plain_rss = plain(args.trials, args.concurrency, work, True, args.rss_at)
    result.update(plain_rss_at_mib=plain_rss.at, plain_rss_end_mib=plain_rss.end)
    print(f"plain Ray Tune, reused actors: {a:.1f} s; driver RSS {_mib(plain_rss.at)} after {args.rss_at} trials, "
          f"{_mib(plain_rss.end)} at the end", flush=True)
    if args.stock_node_too:
        s, _, _ = medtune(args.trials, args.concurrency, work / "stock", stock_node=True)
        result.update(medtune_stock_node_seconds=s, stock_node_ratio=s / a)
        print(f"medtune on a stock Ray node: {s:.1f} s, ratio {s / a:.2f}", flush=True)
    if args.memory_study_too:
        m, _, _ = medtune(args.trials, args.concurrency, work / "memory-study", rss_at=args.rss_at,
                          study_storage="memory")
        result.update(medtune_memory_study_seconds=m, memory_study_ratio=m / a)
        print(f"medtune with the Optuna study in memory: {m:.1f} s, ratio {m / a:.2f}", flush=True)
    b, medtune_rss, extra = medtune(args.trials, args.concurrency, work, rss_at=args.rss_at,
                                    study_storage=args.study_storage)
    result.update(plain_seconds=a, medtune_seconds=b, ratio=b / a, medtune_rss_at_mib=medtune_rss.at,
                  medtune_rss_end_mib=medtune_rss.end, **extra)
    if medtune_rss.at:
        result["medtune_rss_growth"] = medtune_rss.end / medtune_rss.at
    if plain_rss.at:
        result["plain_rss_growth"] = plain_rss.end / plain_rss.at
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\n{args.trials} trivial trials at concurrency {args.concurrency}: plain Ray Tune (random search, no "
          f"callbacks, reused actors) {a:.1f} s, medtune {b:.1f} s: ratio {b / a:.2f} (target <= 1.2)")
    print(f"driver RSS after {args.rss_at} trials / at the end: plain {_mib(plain_rss.at)} / {_mib(plain_rss.end)}, "
          f"medtune {_mib(medtune_rss.at)} / {_mib(medtune_rss.end)}; {extra['child_runs']} child runs; "
          f"medtune best {extra['medtune_best_seconds']:.1f} s")
    if args.default_plain_trials:
        per_default, per_medtune = d / args.default_plain_trials, b / args.trials
        print(f"plain Ray Tune with default actor handling: {per_default:.3f} s per trial vs medtune's "
              f"{per_medtune:.3f} s: ratio {per_medtune / per_default:.2f}")


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


if __name__ == "__main__":
    main()
