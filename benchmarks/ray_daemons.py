"""Where a sweep's per-epoch overhead goes: the bare training loop beside an idle Ray node.

A sweep's trial can train a few per cent slower per epoch than the bare loop
(``sweep_efficiency.py``) while ``cpu_sampler`` shows Ray's daemons using little CPU. This script
takes Tune, Optuna, ASHA, MLflow and the Ray worker out of the picture: it runs the *same* bare
loop (``sweep_efficiency.bare``, in this process) in alternating conditions:

* ``alone``: no Ray on the machine;
* ``beside_ray``: a helper process holds a stock local node,
  ``ray.init(address="local", include_dashboard=False)``, and does nothing else;
* ``beside_medtune_ray``: the node as ``medtune sweep`` starts it
  (``medtune.search.run.ray_node.init_ray``), with the slower timers of ``LOCAL_NODE_SYSTEM_CONFIG``;
* ``nice15``: alone, in a new process at the niceness Ray gives its worker processes
  (``RAY_worker_niceness``).

It also counts the Ray daemons' wake-ups per second (context switches of their threads). On a
2-core machine each wake-up preempts one of torch's two OpenMP threads, and the other waits for it
at the next barrier, so a small CPU share can cost a larger share of the loop's time.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/ray_daemons.py --epochs 3 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpu_sampler import processes  # sibling modules: this script's folder is first on sys.path
from sweep_efficiency import bare

from medtune.search.run.ray_node import LOCAL_NODE_SYSTEM_CONFIG

DAEMONS = ("raylet", "gcs_server", "log_monitor", "dashboard", "monitor.py")
#: What each helper process runs to hold a node: a stock one, or the one ``medtune sweep`` starts.
HOLD = {
    "beside_ray": "import ray; ray.init(address='local', include_dashboard=False)",
    "beside_medtune_ray": "from medtune.search.run.ray_node import init_ray; init_ray()",
}


def _switches() -> dict[tuple[str, str], int]:
    """(pid, tid) -> voluntary + involuntary context switches, for every thread of Ray's daemons."""
    out = {}
    for proc, cmd in processes():
        if not any(d in cmd for d in DAEMONS):
            continue
        try:
            for task in (proc / "task").iterdir():
                fields = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines()
                              if ":\t" in line)
                out[(proc.name, task.name)] = (int(fields["voluntary_ctxt_switches"])
                                               + int(fields["nonvoluntary_ctxt_switches"]))
        except (OSError, KeyError, ValueError):
            continue
    return out


def daemon_wakeups_per_second(window: float = 5.0) -> float:
    before = _switches()
    time.sleep(window)
    after = _switches()
    return sum(after[k] - before[k] for k in after if k in before) / window


def beside_ray(epochs: int, threads: int, work: Path, hold: str) -> tuple[float, float]:
    """(per-epoch seconds of the bare loop, Ray daemons' wake-ups per second) next to an idle node."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    code = f"import time; {hold}; print('up', flush=True); time.sleep(3600)"
    helper = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        helper.stdout.readline()
        time.sleep(10)  # let the prestarted idle workers finish importing
        wakeups = daemon_wakeups_per_second()
        per_epoch = bare(epochs, threads, work)["per_epoch"]
    finally:
        helper.kill()
        helper.wait()
        # a killed driver leaves the node it started running: stop it, or it would be beside the next "alone"
        subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True)
        time.sleep(3)
    return per_epoch, wakeups


def at_niceness(epochs: int, threads: int, work: Path, niceness: int) -> float:
    """Per-epoch seconds of the bare loop in a new process started at ``niceness`` (this script, ``--bare-in``)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--bare-in", str(work), "--epochs", str(epochs),
               "--threads", str(threads)]
    done = subprocess.run(command, preexec_fn=lambda: os.nice(niceness), capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the four conditions")
    parser.add_argument("--out", default="benchmarks/results/ray_daemons.json")
    parser.add_argument("--bare-in", metavar="FOLDER",
                        help="only run the bare loop (files in FOLDER) and print its per-epoch seconds: "
                             "what the nice15 condition runs in a new process")
    args = parser.parse_args()
    if args.bare_in:
        print(json.dumps(bare(args.epochs, args.threads, Path(args.bare_in))["per_epoch"]))
        return
    work = Path(tempfile.mkdtemp(prefix="medtune-ray-daemons-"))
    per_epoch: dict[str, list[float]] = {"alone": [], "beside_ray": [], "beside_medtune_ray": [], "nice15": []}
    wakeups: dict[str, list[float]] = {name: [] for name in HOLD}
    for r in range(args.rounds):
        per_epoch["alone"].append(bare(args.epochs, args.threads, work / f"alone{r}")["per_epoch"])
        for name, hold in HOLD.items():
            seconds, rate = beside_ray(args.epochs, args.threads, work / f"{name}{r}", hold)
            per_epoch[name].append(seconds)
            wakeups[name].append(rate)
        per_epoch["nice15"].append(at_niceness(args.epochs, args.threads, work / f"nice{r}", 15))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in per_epoch.items())
              + "; daemon wake-ups/s " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in wakeups.items()), flush=True)
    mean = {k: sum(v) / len(v) for k, v in per_epoch.items()}
    ratios = {k: mean[k] / mean["alone"] for k in mean}
    result = {"per_epoch": per_epoch, "mean_per_epoch": mean, "ratio_to_alone": ratios, "daemon_wakeups": wakeups,
              "medtune_system_config": LOCAL_NODE_SYSTEM_CONFIG, "epochs": args.epochs, "threads": args.threads}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("per-epoch seconds / alone: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
