"""The seed paper side by side: its Table 5 setting vs a timed search.

Both sides end the same way, with ``medtune final`` (``medtune.search.run.final.run_final``): the configuration
is trained on train + half of val, the other half of val picks the decision threshold, and the
PneumoniaMNIST test split is scored once (accuracy and ROC AUC with 95% bootstrap intervals).

* paper: each architecture of ``spaces/paper_table5.yaml`` (plain CNN, DenseNet-121, VGG-16-BN,
  ResNet-50, Inception-v3; batch size 8, dropout 0.4, lr 1e-4, ImageNet weights) trained for
  ``--paper-epochs`` (the paper: 10).
* search: ``spaces/demo.yaml`` (TPE + ASHA, two trials at a time) with ``search.time_budget_s``
  set to ``--search-minutes`` and more samples than fit in it, so the clock ends it; then the best
  configuration's final run (its epoch budget: the sweep's max_t).

The table puts both next to the published anchors (MedMNIST v2, PneumoniaMNIST test). Target for
a 30-minute search on 2 CPU cores: test AUC >= 0.97 and accuracy >= 0.90.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/paper_table.py --search-minutes 30 --paper-epochs 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

#: MedMNIST v2 (Yang et al., 2023), PneumoniaMNIST test: (AUC, accuracy).
ANCHORS = {
    "ResNet-18 (28 px), MedMNIST v2": (0.944, 0.854),
    "AutoKeras, MedMNIST v2": (0.947, 0.878),
    "Google AutoML Vision, MedMNIST v2": (0.991, 0.946),
}


def _final(spec: Any, out: Path) -> dict[str, Any]:
    from medtune.search.run.final import run_final

    started = time.perf_counter()
    outcome = run_final(spec, out_dir=out, gradcam_samples=0)
    report = outcome.reports[0]
    return {"test_auc": report.metrics["roc_auc"], "test_accuracy": report.metrics["accuracy"],
            "auc_ci95": list(report.intervals["roc_auc"]), "accuracy_ci95": list(report.intervals["accuracy"]),
            "threshold": report.threshold, "epochs": outcome.epochs, "train_seconds": outcome.train_seconds,
            "wall_seconds": time.perf_counter() - started, "config": outcome.member_configs[0]}


def paper_rows(epochs: int, architectures: list[str] | None, work: Path,
               pretrained: str | None = None) -> list[dict[str, Any]]:
    """One final run per architecture of the paper's grid, at its fixed hyperparameters.

    ``pretrained`` replaces the space file's ``imagenet`` (``none``: from scratch, where no ImageNet
    weights can be reached). An architecture that fails is recorded with its error; the others run.
    """
    from medtune.search.spec.loader import read_yaml
    from medtune.search.spec.sweep_spec import validate_spec

    raw = read_yaml("spaces/paper_table5.yaml")
    grid = raw["space"]["architecture"]["choice"]
    rows = []
    for arch in architectures or grid:
        fixed = {**raw["fixed"], "architecture": arch, **({"pretrained": pretrained} if pretrained else {})}
        doc = {**raw, "name": f"paper-{arch}", "space": {}, "fixed": fixed,
               "search": {**raw["search"], "num_samples": 1, "sampler": {"name": "random"},
                          "scheduler": {"name": "fifo", "max_t": epochs}},
               "mlflow": {"tracking_uri": f"sqlite:///{work}/mlruns.db", "artifact_location": str(work / "art")}}
        spec = validate_spec(doc, source=f"spaces/paper_table5.yaml (architecture={arch})")
        try:
            row = {"name": f"paper: {arch} ({fixed['pretrained']})", "architecture": arch,
                   **_final(spec, work / f"paper-{arch}")}
        except Exception as exc:  # one architecture's failure must not lose the others' rows
            print(f"paper {arch}: failed: {exc}", flush=True)
            rows.append({"name": f"paper: {arch}", "architecture": arch, "error": str(exc)})
            continue
        print(f"paper {arch}: test AUC {row['test_auc']:.4f}, accuracy {row['test_accuracy']:.4f}, "
              f"{row['epochs']} epochs in {row['train_seconds']:.0f} s", flush=True)
        rows.append(row)
    return rows


def search_row(minutes: float, samples: int, work: Path, seed: int = 0) -> dict[str, Any]:
    """A demo-space sweep cut by its time budget, then the best configuration's final run.

    ``seed`` is the TPE sampler's: repeating the whole protocol under other seeds shows how much of
    a test number is the search's luck (the test split is still scored once per repeat).
    """
    import ray

    from medtune.search.run.sweep import run_sweep
    from medtune.search.spec.loader import load_spec

    spec = load_spec("spaces/demo.yaml", [
        "name=paper-table-search", f"search.num_samples={samples}", f"search.sampler.seed={seed}",
        f"search.time_budget_s={minutes * 60}",
        f"storage={work / 'ray_results'}", f"mlflow.tracking_uri=sqlite:///{work}/mlruns.db",
        f"mlflow.artifact_location={work / 'art'}"])
    started = time.perf_counter()
    outcome = run_sweep(spec, run_name="paper-table-search", best_config_out=work / "best_config.yaml")
    sweep_wall = time.perf_counter() - started
    ray.shutdown()
    best = load_spec(work / "best_config.yaml")
    row = {"name": f"search ({minutes:g} min, TPE seed {seed}) + final", "search_seed": seed,
           **_final(best, work / "search-final"),
           "sweep_wall_seconds": sweep_wall, "sweep_fit_seconds": outcome.fit_seconds,
           "trials": len(outcome.results), "best_val_auc": best.provenance.get("best_value")}
    print(f"search: {row['trials']} trials in {sweep_wall:.0f} s, best val AUC {row['best_val_auc']:.4f}; "
          f"final test AUC {row['test_auc']:.4f}, accuracy {row['test_accuracy']:.4f}", flush=True)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | test AUC | test accuracy | epochs | train s |", "| --- | --- | --- | --- | --- |"]
    for name, (auc, acc) in ANCHORS.items():
        lines.append(f"| {name} (published) | {auc:.3f} | {acc:.3f} | | |")
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error'][:80]} | | | |")
            continue
        lines.append(f"| {r['name']} | {r['test_auc']:.3f} ({r['auc_ci95'][0]:.3f}-{r['auc_ci95'][1]:.3f}) | "
                     f"{r['test_accuracy']:.3f} ({r['accuracy_ci95'][0]:.3f}-{r['accuracy_ci95'][1]:.3f}) | "
                     f"{r['epochs']} | {r['train_seconds']:.0f} |")
    searches = [r for r in rows if r["name"].startswith("search") and "error" not in r]
    if len(searches) > 1:  # repeats under other TPE seeds: the number the target is judged on
        lines.append(f"| search + final, mean of {len(searches)} seeds | "
                     f"{sum(r['test_auc'] for r in searches) / len(searches):.4f} | "
                     f"{sum(r['test_accuracy'] for r in searches) / len(searches):.4f} | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search-minutes", type=float, default=30.0)
    parser.add_argument("--search-samples", type=int, default=200, help="more than fit in the budget")
    parser.add_argument("--search-seed", type=int, default=0, help="the TPE sampler's seed (repeats: 1, 2, ...)")
    parser.add_argument("--paper-epochs", type=int, default=10, help="the paper's: 10")
    parser.add_argument("--paper-architectures", nargs="*", help="default: the whole grid of paper_table5.yaml")
    parser.add_argument("--paper-pretrained", help="replaces the space file's 'imagenet' (none: from scratch)")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="run nothing: join the rows of earlier runs (the search and the paper side run apart)")
    parser.add_argument("--out", default="benchmarks/results/paper_table.json")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        rows = [row for part in parts for row in part["rows"]]
        runs = []
        for part in parts:  # a file that was merged before already holds a list
            runs.extend(part["args"] if isinstance(part["args"], list) else [part["args"]])
        Path(args.out).write_text(json.dumps({"args": runs, "anchors": ANCHORS, "rows": rows},
                                             indent=1, default=str))
        print(table(rows))
        return
    work = Path(tempfile.mkdtemp(prefix="medtune-paper-table-"))
    rows = []
    if not args.skip_search:
        rows.append(search_row(args.search_minutes, args.search_samples, work, args.search_seed))
    if not args.skip_paper:
        rows.extend(paper_rows(args.paper_epochs, args.paper_architectures, work, args.paper_pretrained))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "anchors": ANCHORS, "rows": rows}, indent=1, default=str))
    print("\n" + table(rows))


if __name__ == "__main__":
    main()
