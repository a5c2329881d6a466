"""Small data: does the search a new user runs find good configurations fast, and decide well?

The questions, on small sets (and the full ones, as a check that nothing got worse):

* does the search a new user runs (the shipped ``spaces/demo.yaml`` with only ``data.*`` pointed at
  their data; its budget counts images seen, and ``search.cv: auto`` cross-validates trials over
  train + val when val has < 100 images in a class) followed by ``medtune final`` at least match a
  plain baseline trained for a full budget?
* how many configurations does it judge per CPU-hour, against the search before fold racing
  (``--arms before after``: ``before`` is 5-fold trials that train every fold from the start,
  ``after`` the shipped defaults), at what test AUC of the configuration it selects?
* what do ``final``'s operating points give on test: balanced accuracy, sensitivity and
  specificity for every rule, and for the default one?

Sets (``medical_tasks.py``): ``pneumonia-small`` (a stratified, seeded 546 / 78 subsample of
PneumoniaMNIST's train and val, BreastMNIST's sizes, with the full 624-image test split; one
subsample per seed), ``pneumonia-full`` (4708 / 524 / 624), ``brain-small`` and ``brain-full`` (the
brain-MRI set as tumour vs ``notumor``: 10% of ``Training/`` as val, ``Testing/`` without its 216
copies of training images as test; small: 546 / 78).

* search + final: TPE seed = the seed; ``--samples`` trials, or with ``--time-budget-s`` as many as
  the clock allows (``--samples`` then only caps them). Configurations judged are the trials ASHA
  stopped or let finish (its own count, ``asha_rungs.json``'s ``stopped``), per CPU-hour of
  ``Tuner.fit`` (wall time x max_concurrent x CPUs per trial). Then the best configuration's final
  run at its default operating point; the test split is scored once.
* baseline: MobileNetV2 from ImageNet weights, batch 128, AdamW lr 1e-3, weight decay 1e-4, cosine,
  class-weighted loss, dropout 0, nothing frozen, demo.yaml's fixed augmentation, ``--baseline-epochs``
  on train; the checkpoint of the epoch with the best val AUC is kept (every epoch is checkpointed),
  and the test split is scored once: AUC, accuracy at 0.5 (the MedMNIST convention) and at the
  ``youden-mid`` threshold chosen on val.

The verdict lines compare the means over seeds: configurations per CPU-hour (after / before, the
ratio of the sums), the selected configuration's test AUC (mean and its standard error over seeds),
and search + final against the baseline.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/small_data.py --sets pneumonia-small --seeds 0 1 2 --arms before after \\
        --time-budget-s 600 --samples 200 --skip-baseline
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_sampler import CpuSampler  # noqa: E402
from medical_tasks import Task, tasks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "spaces" / "demo.yaml"
SETS = ("pneumonia-small", "pneumonia-full", "brain-small", "brain-full")
#: The search before fold racing (5-fold trials training every fold from the start), and the shipped one.
ARMS: dict[str, list[str]] = {"before": ["search.cv=5", "search.cv_racing=false"], "after": []}
#: The baseline's fixed hyperparameters (augmentation comes from demo.yaml's fixed section).
BASELINE = {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "image_size": 28, "batch_size": 128,
            "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "lr_schedule": "cosine", "class_weighted": True,
            "dropout": 0.0, "frozen_depth": 0}
#: Trial-config data keys and the space file's names for them.
DATA_OVERRIDES = {"data_source": "data.source", "data_val_fraction": "data.val_fraction",
                  "data_split_seed": "data.split_seed", "data_train_subset": "data.train_subset",
                  "data_val_subset": "data.val_subset"}


def class_counts(task: Task) -> dict[str, list[int]]:
    """Images per class in each split the task's trials and final see."""
    from medtune.trainables.data import DataConfig, load_splits

    splits = load_splits(DataConfig.from_trial_values(task.data))
    return {s: np.bincount(getattr(splits, s).labels, minlength=splits.num_classes).tolist()
            for s in ("train", "val", "test")}


def _metrics_row(report: Any) -> dict[str, Any]:
    """The test numbers of one two-class ``TestReport``: at its operating point, at 0.5, and by rule."""
    half = report.metrics_at_half
    return {
        "test_auc": report.metrics["roc_auc"], "auc_ci95": list(report.intervals["roc_auc"]),
        "test_accuracy": report.metrics["accuracy"], "accuracy_ci95": list(report.intervals["accuracy"]),
        "balanced_accuracy": report.metrics.get("balanced_accuracy", math.nan),
        "sensitivity": report.metrics["sensitivity"], "specificity": report.metrics["specificity"],
        "sensitivity_ci95": list(report.intervals["sensitivity"]),
        "specificity_ci95": list(report.intervals["specificity"]),
        "threshold": report.threshold, "threshold_rule": report.threshold_rule,
        "tied_interval": list(report.tied_interval), "tied_logit_width": report.tied_logit_width,
        "accuracy_at_0.5": half.get("accuracy", math.nan), "sensitivity_at_0.5": half.get("sensitivity", math.nan),
        "specificity_at_0.5": half.get("specificity", math.nan),
        "by_rule": {rule: dict(values) for rule, values in report.by_rule.items()},
    }


def _best_trial_sem(results: Any, trial_id: str | None, epoch: int | None, metric: str) -> float | None:
    """``<metric>_sem`` of the best trial at its best epoch (cross-validated trials report it)."""
    for result in results:
        history = result.metrics_dataframe
        rid = (result.metrics or {}).get("trial_id") or Path(result.path).name
        if rid != trial_id or history is None or f"{metric}_sem" not in history:
            continue
        rows = history[history["epoch"] == epoch] if epoch and "epoch" in history else history
        if len(rows):
            value = float(rows[f"{metric}_sem"].iloc[-1])
            return None if math.isnan(value) else value
    return None


def _judged(run_path: Path) -> int | None:
    """The configurations ASHA stopped at a rung or let run to ``max_t`` (its own count)."""
    rungs = run_path / "asha_rungs.json"
    return int(json.loads(rungs.read_text())["stopped"]) if rungs.exists() else None


def search_row(task: Task, seed: int, arm: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """demo.yaml with only data.* (and bookkeeping, and the arm's settings) overridden, its sweep,
    then ``final`` on the best configuration."""
    import ray

    from medtune.search.run.final import run_final
    from medtune.search.run.sweep import run_sweep
    from medtune.search.spec.loader import load_spec

    name = f"small-data-{task.name}-{arm}-{seed}"
    folder = work / name
    overrides = [f"name={name}", *(f"{DATA_OVERRIDES[k]}={v}" for k, v in task.data.items()),
                 f"search.sampler.seed={seed}", f"search.num_samples={args.samples}",
                 f"storage={folder / 'ray_results'}", f"mlflow.tracking_uri=sqlite:///{work / 'mlruns.db'}",
                 f"mlflow.artifact_location={work / 'art'}", *ARMS[arm]]
    if args.time_budget_s:
        overrides.append(f"search.time_budget_s={args.time_budget_s}")
    overrides += args.set or []
    spec = load_spec(DEMO, overrides)
    best_path = folder / "best_config.yaml"
    started = time.perf_counter()
    try:
        with CpuSampler(interval=1.0) as sampler:  # the trials' own CPU time, whatever else the machine runs
            outcome = run_sweep(spec, run_name=name, best_config_out=best_path)
    finally:
        ray.shutdown()
    sweep_wall = time.perf_counter() - started
    cpu = sampler.result()
    trial_cpu_hours = cpu["trial_cores"] * cpu["window_seconds"] / 3600 if cpu else None
    if outcome.best_config_path is None:
        raise RuntimeError(f"{name}: no trial reported {spec.metric.name}; no best configuration to run final on")

    best = load_spec(best_path)
    final_started = time.perf_counter()
    final = run_final(best, out_dir=folder / "final", gradcam_samples=0, operating_point=args.operating_point)
    final_wall = time.perf_counter() - final_started
    report_json = json.loads((folder / "final" / "report.json").read_text())
    prov = best.provenance
    errored = sum(1 for r in outcome.results if r.error)
    judged = _judged(Path(outcome.run_path))
    ran = outcome.spec or spec  # with search.cv: auto decided
    cpu_hours = outcome.fit_seconds * ran.search.max_concurrent * ran.resources.cpu / 3600
    outcomes = [e.outcome for e in outcome.entries]
    row = {
        "kind": "search+final", "set": task.name, "seed": seed, "arm": arm, "arm_overrides": ARMS[arm],
        "name": f"search ({arm}: {len(outcome.results)} trials, TPE seed {seed}) + final",
        "trials": len(outcome.results), "trials_errored": errored,
        "trials_completed": outcomes.count("completed"), "trials_stopped_early": outcomes.count("stopped_early"),
        "configs_judged": judged, "cpu_hours": cpu_hours,
        "configs_per_cpu_hour": judged / cpu_hours if judged is not None and cpu_hours > 0 else None,
        "trial_cpu_hours": trial_cpu_hours, "other_cores": cpu.get("other_cores"),
        "configs_per_trial_cpu_hour": judged / trial_cpu_hours if judged is not None and trial_cpu_hours else None,
        "cv_racing_until": ran.trial_base().get("cv_race_until"),
        "best_val_auc": prov.get("best_value"),
        "best_val_auc_sem": _best_trial_sem(outcome.results, prov.get("trial_id"), prov.get("best_epoch"),
                                            spec.metric.name),
        "best_trial": prov.get("trial_id"), "best_trial_epoch": prov.get("best_epoch"),
        **_metrics_row(final.reports[0]),
        "epochs": final.epochs, "cv_folds": report_json.get("cv_folds"),
        "threshold_source": report_json.get("threshold_source"), "final_train_images": report_json.get("train_images"),
        "budget_unit": report_json.get("budget_unit"), "calibration": report_json.get("calibration"),
        "config": final.member_configs[0],
        "sweep_wall_seconds": sweep_wall, "sweep_fit_seconds": outcome.fit_seconds,
        "final_train_seconds": final.train_seconds, "final_wall_seconds": final_wall,
        "wall_seconds": sweep_wall + final_wall,
    }
    print(f"{name}: {row['trials']} trials, {judged} judged in {cpu_hours:.3f} CPU-hours; best val AUC "
          f"{row['best_val_auc']:.4f}; final ({row['epochs']} epochs, cv {row['cv_folds']}) test AUC "
          f"{row['test_auc']:.4f}, balanced accuracy {row['balanced_accuracy']:.4f} at {row['threshold_rule']}; "
          f"{row['wall_seconds']:.0f} s", flush=True)
    return row


def _selecting_reporter(out: Path) -> Any:
    """A ``LocalReporter`` whose best checkpoint is the best-val-AUC epoch among those that came with
    a checkpoint (so the kept checkpoint and the recorded best epoch always agree)."""
    from medtune.trainables.reporters import LocalReporter

    class SelectingReporter(LocalReporter):
        _with_checkpoint = False

        def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
            self._with_checkpoint = checkpoint_dir is not None
            super().report(metrics, checkpoint_dir)

        def _is_better(self, metrics: dict[str, Any]) -> bool:
            return self._with_checkpoint and super()._is_better(metrics)

    return SelectingReporter(out, metric="val_auc", mode="max", num_threads=2)


def baseline_row(task: Task, seed: int, epochs: int, work: Path) -> dict[str, Any]:
    """MobileNetV2 (ImageNet) at fixed settings on train, best-val-AUC epoch kept, test scored once."""
    from unittest import mock

    import medtune.trainables.checkpoints
    from medtune.search.spec.loader import read_yaml
    from medtune.trainables.binary_report import bootstrap_intervals, build_report
    from medtune.trainables.data import DataConfig, load_splits
    from medtune.trainables.evaluate import model_from_checkpoint, predict_split
    from medtune.trainables.train import run_training

    fixed = read_yaml(DEMO).get("fixed") or {}
    config = {**BASELINE, **{k: v for k, v in fixed.items() if k.startswith("augment_")},
              **task.data, "epochs": epochs, "seed": seed}
    if os.environ.get("MEDTUNE_WEIGHTS_DIR"):
        config["weights_dir"] = os.environ["MEDTUNE_WEIGHTS_DIR"]
    out = work / f"baseline-{task.name}-{seed}"
    reporter = _selecting_reporter(out)
    started = time.perf_counter()
    # A long run checkpoints only about CHECKPOINTS_PER_TRIAL times; here every epoch is a candidate.
    with mock.patch.object(medtune.trainables.checkpoints, "CHECKPOINTS_PER_TRIAL", max(epochs, 1)):
        outcome = run_training(config, reporter)
    train_seconds = time.perf_counter() - started
    model, cfg = model_from_checkpoint(reporter.best_checkpoint)
    splits = load_splits(DataConfig.from_trial(cfg))
    val_probs, val_labels = predict_split(model, cfg, splits.val)
    test_probs, test_labels = predict_split(model, cfg, splits.test)
    val_scores, test_scores = val_probs[:, -1], test_probs[:, -1]
    report = build_report("baseline", val_scores, val_labels, test_scores, test_labels, splits.class_names,
                          threshold_rule="youden-mid")
    at_half = bootstrap_intervals(test_scores, np.asarray(test_labels), 0.5)
    row = {
        "kind": "baseline", "set": task.name, "seed": seed, "arm": "baseline",
        "name": f"baseline: mobilenetv2_100 (imagenet), {epochs} epochs, best val AUC epoch",
        "best_val_auc": reporter.best.get("val_auc") if reporter.best else None,
        "selected_epoch": reporter.best.get("epoch") if reporter.best else None,
        **_metrics_row(report), "accuracy_at_0.5_ci95": list(at_half["accuracy"]),
        "epochs": outcome.epochs, "cv_folds": None, "config": cfg.to_dict(),
        "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - started,
    }
    print(f"baseline {task.name} seed {seed}: epoch {row['selected_epoch']} of {epochs} (val AUC "
          f"{row['best_val_auc']:.4f}); test AUC {row['test_auc']:.4f}, accuracy at 0.5 {row['accuracy_at_0.5']:.4f}, "
          f"at youden-mid {row['test_accuracy']:.4f}; {row['wall_seconds']:.0f} s", flush=True)
    return row


def _ci(value: float, ci: list[float] | None) -> str:
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{value:.3f}"


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
    return float(np.mean(values)) if values else math.nan


def _se(values: list[float]) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def table(rows: list[dict[str, Any]], set_name: str) -> str:
    lines = [f"### {set_name}",
             "| run | seed | trials (judged) | configs / CPU-hour | val AUC (selection) | test AUC (95% CI) "
             "| balanced accuracy | sensitivity / specificity | operating point | cv folds | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in (r for r in rows if r["set"] == set_name):
        label = r.get("arm", r["kind"])
        if "error" in r:
            lines.append(f"| {label} | {r['seed']} | failed: {r['error'][:100]} | | | | | | | | |")
            continue
        val = f"{r['best_val_auc']:.4f}" if r.get("best_val_auc") is not None else "-"
        if r.get("best_val_auc_sem") is not None:
            val += f" ± {r['best_val_auc_sem']:.4f}"
        rate = f"{r['configs_per_cpu_hour']:.1f}" if r.get("configs_per_cpu_hour") else "-"
        lines.append(
            f"| {label} | {r['seed']} | {r.get('trials', '-')} ({r.get('configs_judged', '-')}) | {rate} | {val} | "
            f"{_ci(r['test_auc'], r['auc_ci95'])} | {r.get('balanced_accuracy', math.nan):.3f} | "
            f"{r['sensitivity']:.3f} / {r['specificity']:.3f} | {r['threshold_rule']} ({r['threshold']:.3f}) | "
            f"{r['cv_folds'] if r.get('cv_folds') else '-'} | {r['wall_seconds']:.0f} |")
    return "\n".join(lines)


def rules_table(rows: list[dict[str, Any]], set_name: str) -> str:
    """Every operating point's test balanced accuracy, sensitivity and specificity, mean over seeds."""
    mine = [r for r in rows if r["set"] == set_name and "error" not in r and r.get("by_rule")]
    if not mine:
        return ""
    lines = [f"#### {set_name}: operating points on test (mean over {len(mine)} runs)",
             "| rule | balanced accuracy | sensitivity | specificity | min(sens, spec) |",
             "| --- | --- | --- | --- | --- |"]
    for rule in mine[0]["by_rule"]:
        got = [r["by_rule"][rule] for r in mine if rule in r["by_rule"]]
        ba = np.mean([g.get("balanced_accuracy", (g["sensitivity"] + g["specificity"]) / 2) for g in got])
        sens, spec = np.mean([g["sensitivity"] for g in got]), np.mean([g["specificity"] for g in got])
        worst = np.mean([min(g["sensitivity"], g["specificity"]) for g in got])
        lines.append(f"| {rule} | {ba:.3f} | {sens:.3f} | {spec:.3f} | {worst:.3f} |")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]], set_name: str) -> dict[str, Any] | None:
    """Means over seeds: configurations per CPU-hour (after / before), the selected configuration's
    test AUC with its standard error, and search + final against the baseline."""
    ok = [r for r in rows if r["set"] == set_name and "error" not in r]
    by_arm = {arm: [r for r in ok if r.get("arm") == arm] for arm in (*ARMS, "baseline")}
    if not any(by_arm.values()):
        return None
    v: dict[str, Any] = {"set": set_name}
    parts = [set_name]
    for arm, mine in by_arm.items():
        if not mine:
            continue
        aucs = [r["test_auc"] for r in mine]
        v[arm] = {"runs": len(mine), "test_auc": float(np.mean(aucs)), "test_auc_se": _se(aucs),
                  "balanced_accuracy": _mean(mine, "balanced_accuracy"),
                  "accuracy": _mean(mine, "test_accuracy")}
        if arm != "baseline":
            judged = sum(r["configs_judged"] or 0 for r in mine)
            hours = sum(r["cpu_hours"] for r in mine)
            trial_hours = sum(r.get("trial_cpu_hours") or 0 for r in mine)
            v[arm].update(configs_judged=judged, cpu_hours=hours,
                          configs_per_cpu_hour=judged / hours if hours else None,
                          trial_cpu_hours=trial_hours,
                          configs_per_trial_cpu_hour=judged / trial_hours if trial_hours else None)
        parts.append(f"{arm}: test AUC {v[arm]['test_auc']:.4f} ± {v[arm]['test_auc_se']:.4f} (SE, {len(mine)} seeds), "
                     f"balanced accuracy {v[arm]['balanced_accuracy']:.4f}"
                     + (f", {v[arm]['configs_per_cpu_hour']:.1f} configurations per CPU-hour"
                        if v[arm].get("configs_per_cpu_hour") else ""))
    if by_arm["before"] and by_arm["after"] and v["before"]["configs_per_cpu_hour"]:
        ratio = v["after"]["configs_per_cpu_hour"] / v["before"]["configs_per_cpu_hour"]
        se = v["before"]["test_auc_se"]
        v["throughput_ratio"] = ratio
        if v["before"].get("configs_per_trial_cpu_hour") and v["after"].get("configs_per_trial_cpu_hour"):
            v["throughput_ratio_trial_cpu"] = (v["after"]["configs_per_trial_cpu_hour"]
                                               / v["before"]["configs_per_trial_cpu_hour"])
        v["after_auc_within_se_of_before"] = bool(v["after"]["test_auc"] >= v["before"]["test_auc"]
                                                  - (se if math.isfinite(se) else 0.0))
        parts.append(f"after / before: {ratio:.2f}x configurations per CPU-hour (target >= 3; "
                     f"{v.get('throughput_ratio_trial_cpu', math.nan):.2f}x per CPU-hour the trials used); "
                     "after's test AUC "
                     f"{'within' if v['after_auc_within_se_of_before'] else 'NOT within'} one SE of before's")
    v["line"] = "; ".join(parts)
    return v


def environment() -> dict[str, Any]:
    import ray
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "ray": ray.__version__, "python": sys.version.split()[0],
                            "cpus": os.cpu_count()}
    for module in ("timm", "optuna", "mlflow"):
        try:
            info[module] = __import__(module).__version__
        except Exception:
            pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                            timeout=10).stdout.strip()
        info["git_dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                                capture_output=True, text=True, timeout=10).stdout.strip())
    except Exception:
        pass
    return info


def write(out: Path, args: argparse.Namespace, started: str, env: dict[str, Any], data: dict[str, Any],
          rows: list[dict[str, Any]], verdicts: list[dict[str, Any]] | None = None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), "args": vars(args),
           "date": started, "environment": env, "data": data, "rows": rows, "verdicts": verdicts or []}
    out.write_text(json.dumps(doc, indent=1, default=str))


def merge(args: argparse.Namespace) -> None:
    """One result file from several runs (e.g. three seeds of one set and one seed of another)."""
    docs = [json.loads(Path(path).read_text()) for path in args.merge]
    rows = [row for doc in docs for row in doc["rows"]]
    sets = list(dict.fromkeys(row["set"] for row in rows))
    verdicts = [v for s in sets if (v := verdict(rows, s))]
    merged = {"command": [doc["command"] for doc in docs], "merged": args.merge, "args": [doc["args"] for doc in docs],
              "date": max(doc["date"] for doc in docs), "environment": docs[-1]["environment"],
              "data": {k: v for doc in docs for k, v in doc["data"].items()}, "rows": rows, "verdicts": verdicts}
    Path(args.out).write_text(json.dumps(merged, indent=1, default=str))
    for set_name in sets:
        print(table(rows, set_name) + "\n")
        print(rules_table(rows, set_name) + "\n")
    for v in verdicts:
        print(v["line"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="each seed: its subsample, TPE seed and baseline seed")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=["pneumonia-small", "pneumonia-full"])
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=["after"],
                        help="before: 5-fold trials training every fold from the start; after: the shipped defaults")
    parser.add_argument("--samples", type=int, default=16, help="trials per search (with --time-budget-s: at most)")
    parser.add_argument("--time-budget-s", type=float, help="cut each search at this many seconds")
    parser.add_argument("--baseline-epochs", type=int, default=100)
    parser.add_argument("--operating-point", default="auto",
                        help="final's operating point for the search side (every rule's numbers are recorded anyway)")
    parser.add_argument("--train-size", type=int, default=546, help="small sets' train images (BreastMNIST: 546)")
    parser.add_argument("--val-size", type=int, default=78, help="small sets' val images (BreastMNIST: 78)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="appended to the demo overrides (repeatable), e.g. search.scheduler.max_t=600")
    parser.add_argument("--work", help="work folder (data subsamples, Ray results, MLflow store); default a temp dir")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/small_data.json")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="join the rows of earlier runs' result files "
                        "into --out (their commands listed), and print the tables and verdicts over all of them")
    args = parser.parse_args()
    if args.merge:
        merge(args)
        return

    import medical_tasks

    medical_tasks.SMALL_TRAIN, medical_tasks.SMALL_VAL = args.train_size, args.val_size
    started_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    env = environment()
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="medtune-small-data-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    print(f"work folder {work}", flush=True)
    rows: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    for seed in args.seeds:
        for task in tasks(work, seed, args.sets):
            data[f"{task.name}-{seed}"] = {"data": task.data, "class_counts": class_counts(task), "notes": task.notes}
            sides = []
            if not args.skip_search:
                sides += [(arm, lambda arm=arm: search_row(task, seed, arm, args, work)) for arm in args.arms]
            if not args.skip_baseline:
                sides.append(("baseline", lambda: baseline_row(task, seed, args.baseline_epochs, work)))
            for kind, run in sides:
                try:
                    rows.append(run())
                except Exception as exc:  # one run's failure must not lose the others' rows
                    trace = traceback.format_exc()
                    print(f"{kind} {task.name} seed {seed}: failed:\n{trace}", flush=True)
                    rows.append({"kind": kind, "arm": kind, "set": task.name, "seed": seed,
                                 "error": f"{type(exc).__name__}: {exc}", "traceback": trace})
                write(out, args, started_at, env, data, rows)  # after every row: a crash keeps what finished
    verdicts = [v for s in args.sets if (v := verdict(rows, s))]
    write(out, args, started_at, env, data, rows, verdicts)
    print()
    for set_name in args.sets:
        print(table(rows, set_name) + "\n")
        print(rules_table(rows, set_name) + "\n")
    for v in verdicts:
        print(v["line"])


if __name__ == "__main__":
    main()
