r"""How busy does a packed sweep keep one GPU, and what does packing buy over one trial at a time?

One script, one call of the device tool (10 minutes, 64 MiB carried). It runs, on one GPU:

1. one trial alone, per architecture of the space (``run_training`` + ``LocalReporter``, no Ray:
   the trial's own speed, ``--baseline-epochs`` epochs each), then
2. a real sweep, ``python -m medtune sweep spaces/one_gpu.yaml`` in a child process (Ray + Optuna
   TPE + ASHA through medtune's own CLI; MLflow on sqlite where mlflow is installed, else off: the
   result says which), trials packed ``--concurrent`` at a time at ``--gpu-share`` GPU each,

while a thread samples NVML's GPU utilisation every 0.25 s (``medtune.trainables.gpu_metrics``).
From Tune's per-trial ``result.json`` files and the samples it reports:

- ``gpu_busy_pct``: mean utilisation over the whole ``medtune sweep`` command, and after its first
  training step (the 2026-11-30 sweep on an H200: 31% over the run, idle the first 41 s);
- ``seconds_to_first_step``: from the command's start to the first trial's first step (its first
  result's ``timestamp``, whole seconds, minus that epoch's ``epoch_seconds``);
- ``aggregate_over_one_trial``: images/s of all trials together while any trained, over the
  reference architecture's images/s alone (16 MobileNetV2 processes: 6.3x on the H200), and
  ``sequential_speedup``: the time the same epochs would take one trial at a time at each
  architecture's steady speed, over the time they took packed;
- ``first_epoch_ratio``: a trial's first epoch over its later epochs' median, in fresh trial
  processes and in reused ones (Tune's ``reuse_actors``), from the trials' reported results;
- the driver's own ``GPU busy`` line (what the sweep's MLflow parent run gets as ``gpu_busy_pct``),
  and each architecture's peak memory (``gpu_mem_peak_mib``), which bounds how many trials fit.

Prepared here, once (the wheels: Ray and Optuna for an offline GPU machine that has torch and timm;
the data: PneumoniaMNIST, 4 MB; ImageNet weights do not fit in 64 MiB beside the wheels, so the
trials start from random weights, ``pretrained: none``, which trains at the same speed):

    echo /.whl/ >> .git/info/exclude; echo /.gpudata/ >> .git/info/exclude
    bash ../shared/offline-gpu/build-wheels.sh .whl
    mkdir -p .gpudata && cp ../shared/data/pneumoniamnist.npz .gpudata/

The one call (device tool ``run``, ``carry: [".whl", ".gpudata"]``, ``timeout_s: 600``): medtune
is not installed there, so a folder of links gives Python the package layout pip would
(``medtune.search`` is ``search/``):

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1; \
    mkdir -p /tmp/mt/medtune && ln -s $PWD/medtune/* /tmp/mt/medtune/ && \
    ln -s $PWD/search $PWD/trainables /tmp/mt/medtune/ && \
    export PYTHONPATH=/tmp/site:/tmp/mt MEDTUNE_DATA_DIR=$PWD/.gpudata PYTHONUNBUFFERED=1 && nvidia-smi -L; \
    python3 benchmarks/gpu_sweep.py --budget-s 420 --out $OUT/gpu_sweep.json 2>&1 | tee $OUT/gpu_sweep.log

(about 8 minutes, the install included), then copy ``gpu_sweep.json`` from the
files that come back to ``benchmarks/results/``. ``--budget-s`` bounds the whole script: the
baselines stop after a fifth of it, and the sweep gets Tune's ``time_budget_s`` from what is left.

On a CPU (no GPU, no NVML), ``--cpu-smoke`` runs the same steps tiny (2 trials of 1 epoch on a
256-image subset, the plain CNN at 28 px) so that the script keeps working; its GPU numbers are
absent. ``tests/test_gpu_sweep_benchmark.py`` runs it (slow) and tests the parsing and the ratios.

    MEDTUNE_DATA_DIR=../shared/data .venv/bin/python benchmarks/gpu_sweep.py --cpu-smoke --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "gpu_sweep.json"
#: What one trial alone is compared with: the architecture of the 2026-11-30 measurements.
REFERENCE_ARCHITECTURE = "mobilenetv2_100"
#: The driver's line after ``Tuner.fit`` (``medtune.search.run.sweep``); the parent run logs the same number.
DRIVER_BUSY = re.compile(r"GPU busy (\d+(?:\.\d+)?)% of Tuner\.fit")
#: Seconds kept back from Tune's time budget for the command's start (imports, data, Ray) and end.
SWEEP_START_S, SWEEP_END_S = 60.0, 40.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="spaces/one_gpu.yaml")
    parser.add_argument("--samples", type=int, default=16, help="trials in the sweep")
    parser.add_argument("--concurrent", type=int, default=8, help="trials at a time (search.max_concurrent)")
    parser.add_argument("--gpu-share", type=float, default=0.125, help="resources.gpu of each trial")
    parser.add_argument("--cpu", type=float, default=2, help="resources.cpu of each trial (and the baseline's threads)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--architectures", nargs="+",
                        default=["mobilenetv2_100", "tf_efficientnet_lite0", "simple_cnn"])
    parser.add_argument("--max-epochs", type=int, default=4, help="ASHA's max_t in epochs (grace 1, factor 3)")
    parser.add_argument("--baseline-epochs", type=int, default=3, help="epochs of each lone trial (first + steady)")
    parser.add_argument("--train-subset", type=int, help="data.train_subset (default: the whole train split)")
    parser.add_argument("--val-subset", type=int, help="data.val_subset")
    parser.add_argument("--pretrained", default="none", help="fixed.pretrained (weights are not carried to the GPU)")
    parser.add_argument("--mlflow", choices=("auto", "off"), default="auto",
                        help="auto: sqlite in the work folder when mlflow is installed")
    parser.add_argument("--budget-s", type=float, default=420, help="the whole script's time, in seconds")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny settings for a CPU: 2 trials, 1 epoch")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (Ray results, MLflow store)")
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        args.samples, args.concurrent, args.gpu_share, args.cpu = 2, 2, 0.0, 1
        args.image_size, args.architectures, args.max_epochs, args.baseline_epochs = 28, ["simple_cnn"], 1, 2
        args.train_subset, args.val_subset = args.train_subset or 256, args.val_subset or 128
        args.budget_s = min(args.budget_s, 300)
    return args


# -- what the sweep's trials reported ---------------------------------------------------------------
def read_trial_results(run_folder: Path) -> list[dict[str, Any]]:
    """Every reported epoch of every trial (Tune's ``trial_*/result.json``, one JSON object a line),
    reduced to what the measures need, in time order. ``images`` is the epoch's training images
    (the step of the ``images_seen`` counter)."""
    rows = []
    for path in sorted(run_folder.glob("trial_*/result.json")):
        seen_before = 0
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if "epoch" not in r:
                continue
            seen = int(r.get("images_seen", 0))
            rows.append({
                "trial_id": r.get("trial_id", path.parent.name.removeprefix("trial_")),
                "pid": r.get("pid"), "architecture": (r.get("config") or {}).get("architecture"),
                "epoch": int(r["epoch"]), "epoch_seconds": float(r.get("epoch_seconds", float("nan"))),
                "images_per_sec": float(r.get("images_per_sec", float("nan"))), "images": seen - seen_before,
                "timestamp": float(r["timestamp"]), "gpu_util_pct": r.get("gpu_util_pct"),
                "gpu_mem_peak_mib": r.get("gpu_mem_peak_mib"),
            })
            seen_before = seen
    return sorted(rows, key=lambda row: (row["timestamp"], row["trial_id"], row["epoch"]))


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else None


def first_epoch_ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each trial's first epoch over the median of its later ones (trials with two epochs or more),
    split by whether the trial was its process's first (a fresh process) or ran in a reused one."""
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_trial.setdefault(row["trial_id"], []).append(row)
    first_in_pid: dict[Any, str] = {}
    for row in rows:  # time order: the first trial seen in a process is the one that started it
        first_in_pid.setdefault(row["pid"], row["trial_id"])
    fresh, reused, per_trial = [], [], {}
    for trial_id, epochs in by_trial.items():
        epochs.sort(key=lambda row: row["epoch"])
        later = _median([e["epoch_seconds"] for e in epochs[1:]])
        if later is None or later <= 0:
            continue
        ratio = epochs[0]["epoch_seconds"] / later
        is_fresh = epochs[0]["pid"] is None or first_in_pid.get(epochs[0]["pid"]) == trial_id
        (fresh if is_fresh else reused).append(ratio)
        per_trial[trial_id] = {"architecture": epochs[0]["architecture"], "ratio": ratio, "fresh_process": is_fresh,
                               "first_epoch_s": epochs[0]["epoch_seconds"], "later_epoch_s": later}
    return {"median_fresh": _median(fresh), "median_reused": _median(reused), "trials": per_trial}


def seconds_to_first_step(rows: list[dict[str, Any]], started_at: float) -> float | None:
    """From ``started_at`` (Unix time) to the earliest epoch start: a result's ``timestamp`` (its
    end, whole seconds) minus its ``epoch_seconds``."""
    starts = [row["timestamp"] - row["epoch_seconds"] for row in rows if row["epoch_seconds"] == row["epoch_seconds"]]
    return max(0.0, min(starts) - started_at) if starts else None


def throughput(rows: list[dict[str, Any]], baseline: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Images/s of all trials together over the span in which any trained, against one trial alone.

    ``aggregate_over_one_trial``: over the reference architecture's steady images/s alone (the
    first baseline's when the reference did not run); ``sequential_speedup``: the seconds these
    epochs' images take one trial at a time at each architecture's steady speed, over the span
    (None when an architecture of the sweep has no baseline)."""
    if not rows:
        return {"images": 0, "span_s": None, "aggregate_images_per_s": None, "aggregate_over_one_trial": None,
                "sequential_speedup": None, "reference_architecture": None}
    start = min(row["timestamp"] - row["epoch_seconds"] for row in rows)
    span = max(row["timestamp"] for row in rows) - start
    images = sum(row["images"] for row in rows)
    aggregate = images / span if span > 0 else None
    reference = REFERENCE_ARCHITECTURE if REFERENCE_ARCHITECTURE in baseline else next(iter(baseline), None)
    alone = (baseline.get(reference) or {}).get("steady_images_per_s") if reference else None
    sequential = None
    speeds = {arch: (b or {}).get("steady_images_per_s") for arch, b in baseline.items()}
    if span > 0 and all(speeds.get(row["architecture"]) for row in rows):
        sequential = sum(row["images"] / speeds[row["architecture"]] for row in rows) / span
    return {"images": images, "span_s": span, "aggregate_images_per_s": aggregate,
            "aggregate_over_one_trial": aggregate / alone if aggregate and alone else None,
            "sequential_speedup": sequential, "reference_architecture": reference}


def busy_shares(timeline: list[tuple[float, float]], first_step_s: float | None) -> dict[str, Any]:
    """Mean utilisation over the whole timeline (seconds since the command started, percent),
    before and after the first step; and the timeline in 1-second bins for the result file."""
    if not timeline:
        return {"gpu_busy_pct": None, "gpu_busy_pct_before_first_step": None, "gpu_busy_pct_after_first_step": None,
                "timeline_1s": []}
    before = [v for t, v in timeline if first_step_s is not None and t < first_step_s]
    after = [v for t, v in timeline if first_step_s is None or t >= first_step_s]
    bins: dict[int, list[float]] = {}
    for t, v in timeline:
        bins.setdefault(int(t), []).append(v)
    return {"gpu_busy_pct": statistics.fmean(v for _, v in timeline),
            "gpu_busy_pct_before_first_step": statistics.fmean(before) if before else None,
            "gpu_busy_pct_after_first_step": statistics.fmean(after) if after else None,
            "timeline_1s": [[t, round(statistics.fmean(vs), 1)] for t, vs in sorted(bins.items())]}


def per_architecture(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Epochs, median images/s while packed and the largest peak memory of each architecture's trials."""
    out: dict[str, Any] = {}
    for arch in sorted({row["architecture"] for row in rows if row["architecture"]}):
        mine = [row for row in rows if row["architecture"] == arch]
        peaks = [row["gpu_mem_peak_mib"] for row in mine if row["gpu_mem_peak_mib"] is not None]
        out[arch] = {"trials": len({row["trial_id"] for row in mine}), "epochs": len(mine),
                     "median_images_per_s_packed": _median([row["images_per_sec"] for row in mine]),
                     "gpu_mem_peak_mib_max": max(peaks) if peaks else None}
    return out


# -- the runs -----------------------------------------------------------------------------------------
def sweep_overrides(args: argparse.Namespace, work: Path, mlflow_on: bool, time_budget_s: float) -> list[str]:
    """The ``--set`` items that turn the space into the measured sweep."""
    sets = ["name=gpu-sweep", f"storage={work / 'ray_results'}", f"search.num_samples={args.samples}",
            f"search.max_concurrent={args.concurrent}", f"resources.gpu={args.gpu_share:g}",
            f"resources.cpu={args.cpu:g}", f"data.image_size={args.image_size}",
            f"space.architecture={{choice: [{', '.join(args.architectures)}]}}", f"fixed.pretrained={args.pretrained}",
            "search.scheduler.unit=epochs", f"search.scheduler.max_t={args.max_epochs}",
            "search.scheduler.grace_period=1", "search.scheduler.reduction_factor=3", "search.cv=null",
            f"search.time_budget_s={max(time_budget_s, 30):.0f}"]
    if args.train_subset:
        sets.append(f"data.train_subset={args.train_subset}")
    if args.val_subset:
        sets.append(f"data.val_subset={args.val_subset}")
    if mlflow_on:
        sets += [f"mlflow.tracking_uri=sqlite:///{work / 'mlruns.db'}", f"mlflow.artifact_location={work / 'art'}"]
    else:
        sets.append("mlflow.enabled=false")
    return sets


def baseline_trials(args: argparse.Namespace, sets: list[str], work: Path, deadline: float) -> dict[str, Any]:
    """Each architecture trained alone in this process for ``--baseline-epochs`` epochs: its first
    and steady epoch and images/s. Architectures left when ``deadline`` (monotonic) passes are skipped."""
    from medtune.search.run.trial_values import trial_fixed_values
    from medtune.search.spec.loader import load_spec
    from medtune.trainables.reporters import LocalReporter
    from medtune.trainables.train import run_training

    spec = load_spec(REPO / args.space, [s for s in sets if not s.startswith("search.time_budget_s")])
    out: dict[str, Any] = {}
    for arch in args.architectures:
        if time.monotonic() > deadline:
            out[arch] = {"skipped": "time budget"}
            continue
        config = {**trial_fixed_values(spec), "architecture": arch, "batch_size": 64, "lr": 1e-3, "dropout": 0.3,
                  "frozen_depth": 0, "epochs": args.baseline_epochs, "budget_unit": "epochs", "budget": None}
        reporter = LocalReporter(work / f"alone-{arch}", num_threads=max(1, int(args.cpu)))
        run_training(config, reporter)
        _free_gpu_memory()  # the sweep's trials, not this process, should hold the GPU's memory
        history = reporter.history
        steady = history[1:] or history
        out[arch] = {"epochs": len(history), "first_epoch_s": history[0]["epoch_seconds"],
                     "steady_epoch_s": _median([h["epoch_seconds"] for h in steady]),
                     "steady_images_per_s": _median([h["images_per_sec"] for h in steady]),
                     "gpu_util_pct_steady": _median([h["gpu_util_pct"] for h in steady if "gpu_util_pct" in h]),
                     "gpu_mem_peak_mib": max((h.get("gpu_mem_peak_mib", 0) for h in history), default=None) or None}
        out[arch]["first_epoch_ratio"] = (out[arch]["first_epoch_s"] / out[arch]["steady_epoch_s"]
                                          if len(history) > 1 and out[arch]["steady_epoch_s"] else None)
    return out


def _free_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def gpu_sampler() -> Any:
    """NVML's sampler of every visible GPU, or None on a machine without NVML or GPUs."""
    from medtune.trainables.gpu_metrics import UtilisationSampler, open_nvml, visible_handles

    nvml = open_nvml()
    handles = visible_handles(nvml) if nvml is not None else []
    return UtilisationSampler(nvml, handles) if handles else None


def run_sweep_command(args: argparse.Namespace, sets: list[str], work: Path, name: str,
                      timeout_s: float) -> dict[str, Any]:
    """``python -m medtune sweep --name NAME`` in a child process, sampled from its start to its end."""
    command = [sys.executable, "-m", "medtune", "sweep", args.space, "--name", name,
               *(a for s in sets for a in ("--set", s))]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    sampler = gpu_sampler()
    log_path = work / "sweep.log"
    started_at = time.time()
    if sampler is not None:
        sampler.start()
    with open(log_path, "w") as log:
        try:
            code = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    wall = time.time() - started_at
    if sampler is not None:
        sampler.stop()
    text = log_path.read_text(errors="replace")
    driver = DRIVER_BUSY.search(text)
    return {"returncode": code, "wall_s": wall, "started_at": started_at, "log_tail": text[-3000:],
            "timeline": sampler.timeline if sampler is not None else [],
            "gpus_sampled": len(sampler.handles) if sampler is not None else 0,
            "driver_gpu_busy_pct": float(driver.group(1)) if driver else None}


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    began = time.monotonic()
    mlflow_on = args.mlflow == "auto" and importlib.util.find_spec("mlflow") is not None
    work = Path(tempfile.mkdtemp(prefix="medtune-gpu-sweep-"))
    name = f"gpu-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        baseline = baseline_trials(args, sweep_overrides(args, work, mlflow_on, 0), work,
                                   deadline=began + args.budget_s / 5)
        left = args.budget_s - (time.monotonic() - began)
        sets = sweep_overrides(args, work, mlflow_on, left - SWEEP_START_S - SWEEP_END_S)
        sweep = run_sweep_command(args, sets, work, name, timeout_s=max(left, 60))
        rows = read_trial_results(work / "ray_results" / name)
        first_step = seconds_to_first_step(rows, sweep["started_at"])
        result = {
            "question": "How busy does a packed sweep keep one GPU, and what does packing buy over one trial?",
            "date": date.today().isoformat(), "device": device_name(),
            "command": " ".join(["benchmarks/gpu_sweep.py", *(argv if argv is not None else sys.argv[1:])]),
            "mlflow": "sqlite" if mlflow_on else ("off (mlflow not installed)" if args.mlflow == "auto" else "off"),
            "settings": {k: v for k, v in vars(args).items() if k not in ("out", "keep")},
            "baseline": baseline,
            "sweep": {"returncode": sweep["returncode"], "wall_s": sweep["wall_s"], "trials": len({r["trial_id"]
                      for r in rows}), "epochs": len(rows), "seconds_to_first_step": first_step,
                      "gpus_sampled": sweep["gpus_sampled"], "driver_gpu_busy_pct": sweep["driver_gpu_busy_pct"],
                      **busy_shares(sweep["timeline"], first_step), **throughput(rows, baseline),
                      "first_epoch_ratio": first_epoch_ratios(rows), "per_architecture": per_architecture(rows)},
            "log_tail": sweep["log_tail"] if sweep["returncode"] != 0 else "",
            "seconds": time.monotonic() - began,
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print(summary(result))
    return result


def summary(result: dict[str, Any]) -> str:
    """The result in a few lines, for the log and the README row."""
    s = result["sweep"]

    def fmt(value: Any, spec: str = ".2f") -> str:
        return "n/a" if value is None else format(value, spec)

    ratio = s["first_epoch_ratio"]
    return "\n".join([
        f"{result['device']}: sweep of {s['trials']} trials, {s['epochs']} epochs in {s['wall_s']:.0f} s "
        f"(exit {s['returncode']}; MLflow {result['mlflow']})",
        f"GPU busy {fmt(s['gpu_busy_pct'], '.0f')}% over the command, {fmt(s['gpu_busy_pct_after_first_step'], '.0f')}%"
        f" after the first step (driver over fit: {fmt(s['driver_gpu_busy_pct'], '.0f')}%)",
        f"first step after {fmt(s['seconds_to_first_step'], '.0f')} s; "
        f"aggregate {fmt(s['aggregate_images_per_s'], '.0f')} images/s = {fmt(s['aggregate_over_one_trial'])}x "
        f"one {s['reference_architecture']} trial alone, "
        f"{fmt(s['sequential_speedup'])}x one trial at a time",
        f"first epoch / later epochs: {fmt(ratio['median_fresh'])} in fresh processes, "
        f"{fmt(ratio['median_reused'])} in reused ones",
    ])


if __name__ == "__main__":
    main()
