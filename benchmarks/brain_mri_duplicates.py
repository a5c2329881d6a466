"""Brain MRI at 64 px: how much do the test split's exact copies of training images flatter the score?

``brain_tumor_mri`` (``../shared/data/brain_tumor_mri``, 4 classes, ``Training/`` and ``Testing/``)
ships with 216 of its 1,311 test images byte-identical to training images (its README). A model
scored on them is partly scored on its own training data. This runs the demo space as a new user
would, with only ``data.source`` and ``data.image_size`` changed (plus ``data.val_fraction``, since
the set has no val folder, and the folders of this run), then ``medtune final`` once, and scores
that one model's ``test_predictions.csv`` twice: on the full test split, and without the test rows
that ``medtune validate``'s leakage check lists as exact copies of train or val images
(``Finding.rows["test"]``, rows in load order, the order of ``test_predictions.csv``).

Reported per test split: accuracy, balanced accuracy and macro one-vs-rest AUC, each with a 95%
percentile bootstrap interval (``medtune.trainables.bootstrap``, as ``final`` reports them).

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights MEDTUNE_PROGRESS=0 \\
        .venv/bin/python benchmarks/brain_mri_duplicates.py --time-budget-s 900
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "brain_mri_duplicates.json"
EXACT_CHECK = "exact duplicates across splits"


def scores_of(labels: np.ndarray, probs: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Accuracy, balanced accuracy and macro one-vs-rest AUC of (N,) labels and (N, K) probabilities,
    each with its 95% bootstrap interval."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from medtune.trainables.bootstrap import percentile_bootstrap

    classes = np.arange(probs.shape[1])

    def metrics(idx: np.ndarray) -> dict[str, float]:
        y, p = labels[idx], probs[idx]
        predicted = p.argmax(axis=1)
        present = len(np.unique(y)) == len(classes)
        return {"accuracy": float(np.mean(predicted == y)),
                "balanced_accuracy": float(balanced_accuracy_score(y, predicted)) if present else float("nan"),
                "macro_auc": float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=classes))
                if present else float("nan")}

    values = metrics(np.arange(len(labels)))
    intervals = percentile_bootstrap(metrics, len(labels), seed=seed)
    out: dict[str, Any] = {"n": int(len(labels)), "per_class": np.bincount(labels, minlength=len(classes)).tolist(),
                           "errors": int(np.sum(probs.argmax(axis=1) != labels))}
    for name, value in values.items():
        out[name] = {"value": value, "ci95": list(intervals[name])}
    return out


def read_predictions(path: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, best model's class probabilities) of a multi-class ``test_predictions.csv``."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    probs = np.array([[float(r[f"best_model_{name}"]) for name in class_names] for r in rows], dtype=np.float64)
    return labels, probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "brain_tumor_mri"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--time-budget-s", type=float, default=900, help="cut the search at this many seconds")
    parser.add_argument("--num-samples", type=int, help="trials (default: the demo space's)")
    parser.add_argument("--best-config", help="skip the sweep: run final on this best_config.yaml (an earlier "
                                              "run's, in the same --work folder)")
    parser.add_argument("--work", help="work folder (default: a temp dir)")
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args()

    import medtune

    work = Path(args.work or tempfile.mkdtemp(prefix="brain-mri-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # the demo space's relative folders (mlruns.db, ray_results) land here
    overrides = [f"data.source={Path(args.data).resolve()}", f"data.image_size={args.image_size}",
                 "data.val_fraction=0.1", "name=brain-mri-64", f"search.time_budget_s={args.time_budget_s}"]
    if args.num_samples:
        overrides.append(f"search.num_samples={args.num_samples}")
    space = REPO / "spaces" / "demo.yaml"
    started = time.perf_counter()
    checked = medtune.validate(space, overrides)
    exact = [f for f in checked.leaks.findings if f.check == EXACT_CHECK]
    copies = sorted({row for f in exact for row in f.rows.get("test", ())})
    print(f"validate: {len(copies)} test images are exact copies of train or val images", flush=True)
    swept = None
    if args.best_config:
        best = yaml.safe_load(Path(args.best_config).read_text())
    else:
        swept = medtune.sweep(space, overrides)
        best = swept.best_config()
    sweep_seconds = time.perf_counter() - started
    if best is None:
        raise SystemExit("no trial finished an epoch")
    final = medtune.final(best, out=work / "final")
    class_names = [str(c) for c in final.report()["class_names"]]
    labels, probs = read_predictions(work / "final" / "test_predictions.csv", class_names)
    keep = np.setdiff1d(np.arange(len(labels)), np.asarray(copies, dtype=np.int64))
    result = {
        "question": "Brain MRI (4 classes) at 64 px, demo space + final: test scores with and without the test "
                    "images that are exact copies of training images",
        "command": "MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights .venv/bin/python "
                   "benchmarks/brain_mri_duplicates.py " + " ".join(
                       f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                       if v is not None and k in ("time_budget_s", "num_samples", "image_size")),
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "overrides": overrides,
        "class_names": class_names,
        "exact_copies_in_test": len(copies),
        "leak_findings": [str(f) for f in checked.leaks.findings],
        "trials": len(swept.entries) if swept else None,
        "best_config": best.get("fixed") if isinstance(best, dict) else None,
        "full_test": scores_of(labels, probs),
        "test_without_exact_copies": scores_of(labels[keep], probs[keep]),
        "copies_only": scores_of(labels[copies], probs[copies]) if copies else None,
        "sweep_seconds": sweep_seconds,
        "total_seconds": time.perf_counter() - started,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    for split in ("full_test", "test_without_exact_copies", "copies_only"):
        row = result[split]
        if row:
            print(f"{split}: n={row['n']} accuracy {row['accuracy']['value']:.4f} "
                  f"macro AUC {row['macro_auc']['value']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
