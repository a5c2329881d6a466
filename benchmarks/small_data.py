"""Small data: does medtune's search + final at least match a plain fixed baseline?

The question: on a small data set, does the search a new user runs (the shipped ``spaces/demo.yaml``
with only ``data.*`` pointed at their file; its budget counts images seen, and ``search.cv: auto``
cross-validates trials over train + val when val has < 100 images in a class) followed by
``medtune final`` (``medtune.search.results.final.run_final``, threshold ``youden-mid``) at least match a plain
baseline trained for a full budget? And on the full data set, does it stay at least as good?

* small: a stratified, seeded subsample of PneumoniaMNIST's train (546) and val (78) with the full
  624-image test split (546 / 78 is BreastMNIST's train / val, the held-back set this mimics); one
  subsample per seed, shared by that seed's search and baseline.
* full: PneumoniaMNIST as it is (4708 / 524 / 624).
* search + final: TPE seed = the seed, ``--samples`` trials (a fixed count, not a clock: the 2-core
  machine is shared, so a time budget would make the result depend on the load), then the best
  configuration's final run; the test split is scored once.
* baseline: MobileNetV2 from ImageNet weights, batch 128, AdamW lr 1e-3, weight decay 1e-4, cosine,
  class-weighted loss, dropout 0, nothing frozen, demo.yaml's fixed augmentation, ``--baseline-epochs``
  on train; the checkpoint of the epoch with the best val AUC is kept (every epoch is checkpointed),
  and the test split is scored once: AUC, accuracy at 0.5 (the MedMNIST convention) and accuracy at
  the ``youden-mid`` threshold chosen on val (what ``final`` would do), so the rule's effect shows.

The verdict line compares the means over seeds: test AUC, and accuracy (search + final at its own
threshold vs the baseline at 0.5; the same-rule comparisons follow in brackets).

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/small_data.py --seeds 0 1 2 --sets small full --samples 16
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

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "spaces" / "demo.yaml"
SPLITS = ("train", "val", "test")
#: The baseline's fixed hyperparameters (augmentation comes from demo.yaml's fixed section).
BASELINE = {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "image_size": 28, "batch_size": 128,
            "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "lr_schedule": "cosine", "class_weighted": True,
            "dropout": 0.0, "frozen_depth": 0}


def full_npz() -> Path:
    """PneumoniaMNIST's own file, where MedMNIST names resolve ($MEDTUNE_DATA_DIR)."""
    from medtune.trainables.data.config import resolve_data_dir

    return resolve_data_dir() / "pneumoniamnist.npz"


def small_npz(path: str | Path, seed: int, train: int = 546, val: int = 78, out_dir: str | Path | None = None) -> Path:
    """A stratified, seeded subsample of ``path``'s train and val splits with its full test split.

    Written in the same layout (``{split}_images``, ``{split}_labels`` of shape (N, 1) uint8) as
    ``<out_dir>/small-s<seed>-<train>-<val>/pneumoniamnist.npz``: the MedMNIST file name keeps the
    class names (normal, pneumonia). Train and val draw from separate seed streams.
    """
    from medtune.trainables.data.splits import stratified_subset

    out = Path(out_dir or tempfile.mkdtemp(prefix="medtune-small-data-")) / f"small-s{seed}-{train}-{val}"
    out.mkdir(parents=True, exist_ok=True)
    target = out / "pneumoniamnist.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    num_classes = int(max(arrays[f"{s}_labels"].max() for s in SPLITS)) + 1
    sizes = {"train": train, "val": val}
    written: dict[str, np.ndarray] = {}
    for stream, split in enumerate(SPLITS, start=1):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1)
        idx = (stratified_subset(labels, sizes[split], [seed, stream], num_classes) if split in sizes
               else np.arange(len(labels)))
        written[f"{split}_images"] = images[idx]
        written[f"{split}_labels"] = labels[idx].reshape(-1, 1).astype(np.uint8)
    np.savez_compressed(target, **written)
    return target


def class_counts(path: Path) -> dict[str, list[int]]:
    with np.load(path, allow_pickle=False) as z:
        return {s: np.bincount(z[f"{s}_labels"].reshape(-1).astype(np.int64)).tolist() for s in SPLITS}


def _metrics_row(report: Any) -> dict[str, Any]:
    """The test numbers of one ``medtune.trainables.binary_report.TestReport``."""
    half = report.metrics_at_half
    return {
        "test_auc": report.metrics["roc_auc"], "auc_ci95": list(report.intervals["roc_auc"]),
        "test_accuracy": report.metrics["accuracy"], "accuracy_ci95": list(report.intervals["accuracy"]),
        "sensitivity": report.metrics["sensitivity"], "specificity": report.metrics["specificity"],
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


def search_row(set_name: str, npz: Path, seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """demo.yaml with only data.* (and bookkeeping) overridden, its sweep, then ``final`` on the best."""
    import ray

    from medtune.search.results.final import run_final
    from medtune.search.spec.loader import load_spec
    from medtune.search.run.sweep import run_sweep

    name = f"small-data-{set_name}-{seed}"
    folder = work / name
    overrides = [f"name={name}", f"data.source={npz}", f"search.sampler.seed={seed}",
                 f"search.num_samples={args.samples}", f"storage={folder / 'ray_results'}",
                 f"mlflow.tracking_uri=sqlite:///{work / 'mlruns.db'}", f"mlflow.artifact_location={work / 'art'}"]
    if args.time_budget_s:
        overrides.append(f"search.time_budget_s={args.time_budget_s}")
    overrides += args.set or []
    spec = load_spec(DEMO, overrides)
    best_path = folder / "best_config.yaml"
    started = time.perf_counter()
    try:
        outcome = run_sweep(spec, run_name=name, best_config_out=best_path)
    finally:
        ray.shutdown()
    sweep_wall = time.perf_counter() - started
    if outcome.best_config_path is None:
        raise RuntimeError(f"{name}: no trial reported {spec.metric.name}; no best configuration to run final on")

    best = load_spec(best_path)
    final_started = time.perf_counter()
    final = run_final(best, out_dir=folder / "final", gradcam_samples=0, threshold=args.threshold)
    final_wall = time.perf_counter() - final_started
    report_json = json.loads((folder / "final" / "report.json").read_text())
    prov = best.provenance
    errored = sum(1 for r in outcome.results if r.error)
    row = {
        "kind": "search+final", "set": set_name, "seed": seed, "data": str(npz),
        "name": f"search ({len(outcome.results)} trials, TPE seed {seed}) + final",
        "trials": len(outcome.results), "trials_errored": errored,
        "best_val_auc": prov.get("best_value"),
        "best_val_auc_sem": _best_trial_sem(outcome.results, prov.get("trial_id"), prov.get("best_epoch"),
                                            spec.metric.name),
        "best_trial": prov.get("trial_id"), "best_trial_epoch": prov.get("best_epoch"),
        **_metrics_row(final.reports[0]),
        "epochs": final.epochs, "cv_folds": report_json.get("cv_folds"),
        "threshold_source": report_json.get("threshold_source"), "final_train_images": report_json.get("train_images"),
        "budget_unit": report_json.get("budget_unit"),
        "config": final.member_configs[0],
        "sweep_wall_seconds": sweep_wall, "sweep_fit_seconds": outcome.fit_seconds,
        "final_train_seconds": final.train_seconds, "final_wall_seconds": final_wall,
        "wall_seconds": sweep_wall + final_wall,
    }
    print(f"{name}: {row['trials']} trials, best val AUC {row['best_val_auc']:.4f}; final ({row['epochs']} epochs, "
          f"cv {row['cv_folds']}) test AUC {row['test_auc']:.4f}, accuracy {row['test_accuracy']:.4f} "
          f"(at 0.5: {row['accuracy_at_0.5']:.4f}); {row['wall_seconds']:.0f} s", flush=True)
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


def baseline_row(set_name: str, npz: Path, seed: int, epochs: int, work: Path) -> dict[str, Any]:
    """MobileNetV2 (ImageNet) at fixed settings on train, best-val-AUC epoch kept, test scored once."""
    from unittest import mock

    import medtune.trainables.train
    from medtune.search.spec.loader import read_yaml
    from medtune.trainables.data import DataConfig, load_splits
    from medtune.trainables.evaluate import model_from_checkpoint, predict_split
    from medtune.trainables.binary_report import bootstrap_intervals, build_report
    from medtune.trainables.train import run_training

    fixed = read_yaml(DEMO).get("fixed") or {}
    config = {**BASELINE, **{k: v for k, v in fixed.items() if k.startswith("augment_")},
              "data_source": str(npz), "epochs": epochs, "seed": seed}
    if os.environ.get("MEDTUNE_WEIGHTS_DIR"):
        config["weights_dir"] = os.environ["MEDTUNE_WEIGHTS_DIR"]
    out = work / f"baseline-{set_name}-{seed}"
    reporter = _selecting_reporter(out)
    started = time.perf_counter()
    # A long run checkpoints only about CHECKPOINTS_PER_TRIAL times; here every epoch is a candidate.
    with mock.patch.object(medtune.trainables.train, "CHECKPOINTS_PER_TRIAL", max(epochs, 1)):
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
        "kind": "baseline", "set": set_name, "seed": seed, "data": str(npz),
        "name": f"baseline: mobilenetv2_100 (imagenet), {epochs} epochs, best val AUC epoch",
        "best_val_auc": reporter.best.get("val_auc") if reporter.best else None,
        "selected_epoch": reporter.best.get("epoch") if reporter.best else None,
        **_metrics_row(report), "accuracy_at_0.5_ci95": list(at_half["accuracy"]),
        "epochs": outcome.epochs, "cv_folds": None, "config": cfg.to_dict(),
        "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - started,
    }
    print(f"baseline {set_name} seed {seed}: epoch {row['selected_epoch']} of {epochs} (val AUC "
          f"{row['best_val_auc']:.4f}); test AUC {row['test_auc']:.4f}, accuracy at 0.5 {row['accuracy_at_0.5']:.4f}, "
          f"at youden-mid {row['test_accuracy']:.4f}; {row['wall_seconds']:.0f} s", flush=True)
    return row


def _ci(value: float, ci: list[float] | None) -> str:
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{value:.3f}"


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
    return float(np.mean(values)) if values else math.nan


def table(rows: list[dict[str, Any]], set_name: str) -> str:
    lines = [f"### {set_name} set",
             "| run | seed | trials | val AUC (selection) | test AUC (95% CI) | test accuracy (95% CI) | threshold (rule) "
             "| accuracy at 0.5 | sensitivity / specificity | epochs | cv folds | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    mine = [r for r in rows if r["set"] == set_name]
    for kind in ("search+final", "baseline"):
        for r in (r for r in mine if r["kind"] == kind):
            label = "search + final" if kind == "search+final" else "baseline"
            if "error" in r:
                lines.append(f"| {label} | {r['seed']} | failed: {r['error'][:100]} | | | | | | | | | |")
                continue
            val = f"{r['best_val_auc']:.4f}" if r.get("best_val_auc") is not None else "-"
            if r.get("best_val_auc_sem") is not None:
                val += f" ± {r['best_val_auc_sem']:.4f}"
            if r.get("selected_epoch") is not None:
                val += f" (epoch {r['selected_epoch']})"
            lines.append(
                f"| {label} | {r['seed']} | {r.get('trials', '-')} | {val} | {_ci(r['test_auc'], r['auc_ci95'])} | "
                f"{_ci(r['test_accuracy'], r['accuracy_ci95'])} | {r['threshold']:.3f} ({r['threshold_rule']}) | "
                f"{r['accuracy_at_0.5']:.3f} | {r['sensitivity']:.3f} / {r['specificity']:.3f} | {r['epochs']} | "
                f"{r['cv_folds'] if r.get('cv_folds') else '-'} | {r['wall_seconds']:.0f} |")
    for kind, label in (("search+final", "search + final"), ("baseline", "baseline")):
        ok = [r for r in mine if r["kind"] == kind and "error" not in r]
        if ok:
            lines.append(f"| {label}, mean of {len(ok)} | | | {_mean(ok, 'best_val_auc'):.4f} | "
                         f"{_mean(ok, 'test_auc'):.4f} | {_mean(ok, 'test_accuracy'):.4f} | | "
                         f"{_mean(ok, 'accuracy_at_0.5'):.4f} | {_mean(ok, 'sensitivity'):.3f} / "
                         f"{_mean(ok, 'specificity'):.3f} | | | {_mean(ok, 'wall_seconds'):.0f} |")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]], set_name: str) -> dict[str, Any] | None:
    """Means over seeds of both sides; accuracy: search at its own threshold vs baseline at 0.5."""
    search = [r for r in rows if r["set"] == set_name and r["kind"] == "search+final" and "error" not in r]
    base = [r for r in rows if r["set"] == set_name and r["kind"] == "baseline" and "error" not in r]
    if not search or not base:
        return None
    v = {"set": set_name, "search_seeds": len(search), "baseline_seeds": len(base),
         "search_auc": _mean(search, "test_auc"), "baseline_auc": _mean(base, "test_auc"),
         "search_accuracy": _mean(search, "test_accuracy"), "baseline_accuracy_at_0.5": _mean(base, "accuracy_at_0.5"),
         "search_accuracy_at_0.5": _mean(search, "accuracy_at_0.5"),
         "baseline_accuracy_youden_mid": _mean(base, "test_accuracy")}
    for rule in ("youden-mid", "youden", "calibrated", "0.5"):
        v[f"search_accuracy_{rule}"] = float(np.mean([r["by_rule"][rule]["accuracy"] for r in search]))
        v[f"baseline_accuracy_{rule}"] = float(np.mean([r["by_rule"][rule]["accuracy"] for r in base]))
    v["search_at_least_baseline_auc"] = v["search_auc"] >= v["baseline_auc"]
    v["search_at_least_baseline_accuracy"] = v["search_accuracy"] >= v["baseline_accuracy_at_0.5"]
    v["line"] = (f"{set_name} set: search AUC mean {v['search_auc']:.4f} vs baseline {v['baseline_auc']:.4f}; "
                 f"accuracy {v['search_accuracy']:.4f} vs {v['baseline_accuracy_at_0.5']:.4f} "
                 f"(search at its youden-mid threshold, baseline at 0.5; both at 0.5: "
                 f"{v['search_accuracy_at_0.5']:.4f} vs {v['baseline_accuracy_at_0.5']:.4f}; both at youden-mid: "
                 f"{v['search_accuracy']:.4f} vs {v['baseline_accuracy_youden_mid']:.4f}); "
                 f"{len(search)} / {len(base)} seeds; accuracy by threshold rule, search vs baseline: "
                 + ", ".join(f"{rule} {v[f'search_accuracy_{rule}']:.4f} vs {v[f'baseline_accuracy_{rule}']:.4f}"
                             for rule in ("youden-mid", "youden", "calibrated", "0.5")))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="each seed: its subsample, TPE seed and baseline seed")
    parser.add_argument("--sets", nargs="+", choices=("small", "full"), default=["small", "full"])
    parser.add_argument("--samples", type=int, default=16, help="trials per search (a count, not a clock)")
    parser.add_argument("--time-budget-s", type=float, help="also cut each search at this many seconds")
    parser.add_argument("--baseline-epochs", type=int, default=100)
    parser.add_argument("--threshold", default="auto",
                        help="final's threshold rule for the search side (every rule's numbers are recorded anyway)")
    parser.add_argument("--train-size", type=int, default=546, help="small set's train images (BreastMNIST: 546)")
    parser.add_argument("--val-size", type=int, default=78, help="small set's val images (BreastMNIST: 78)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="appended to the demo overrides (repeatable), e.g. search.scheduler.max_t=600")
    parser.add_argument("--work", help="work folder (data subsamples, Ray results, MLflow store); default a temp dir")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/small_data.json")
    args = parser.parse_args()

    started_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    env = environment()
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="medtune-small-data-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    source = full_npz()
    print(f"work folder {work}; full data {source}", flush=True)
    rows: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    for seed in args.seeds:
        for set_name in args.sets:
            npz = (small_npz(source, seed, args.train_size, args.val_size, out_dir=work / "data")
                   if set_name == "small" else source)
            data[f"{set_name}-{seed}"] = {"path": str(npz), "class_counts": class_counts(npz)}
            sides = []
            if not args.skip_search:
                sides.append(("search+final", lambda: search_row(set_name, npz, seed, args, work)))
            if not args.skip_baseline:
                sides.append(("baseline", lambda: baseline_row(set_name, npz, seed, args.baseline_epochs, work)))
            for kind, run in sides:
                try:
                    rows.append(run())
                except Exception as exc:  # one run's failure must not lose the others' rows
                    trace = traceback.format_exc()
                    print(f"{kind} {set_name} seed {seed}: failed:\n{trace}", flush=True)
                    rows.append({"kind": kind, "set": set_name, "seed": seed, "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": trace})
                write(out, args, started_at, env, data, rows)  # after every row: a crash keeps what finished
    verdicts = [v for s in args.sets if (v := verdict(rows, s))]
    write(out, args, started_at, env, data, rows, verdicts)
    print()
    for set_name in args.sets:
        print(table(rows, set_name) + "\n")
    for v in verdicts:
        print(v["line"])


if __name__ == "__main__":
    main()
