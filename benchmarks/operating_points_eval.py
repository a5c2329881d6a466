"""The evaluation half of ``operating_points.py``: every rule scored on the saved held-out and test scores.

Needs no torch: it reads the ``.npz`` files the training half wrote and uses medtune's own
calibration (``medtune.trainables.calibration``) and rules (``medtune.trainables.operating_point``),
exactly as ``medtune final`` applies them. Binary runs: the Platt map is fitted on the held-out
scores, every rule is chosen on the calibrated held-out scores and applied to the calibrated test
scores. ``raw 0.5`` is the old default for a class-weighted model (0.5 on the model's own score).
Multi-class runs: ``balanced`` and ``prior`` decisions. The synthetic part draws binormal scores.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import platform
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from medtune.trainables.calibration import expected_calibration_error, fit_platt
from medtune.trainables.operating_point import (
    DEFAULT_MULTICLASS_OPERATING_POINT,
    DEFAULT_OPERATING_POINT,
    MULTICLASS_RULES,
    REPORTED_RULES,
    choose_threshold,
    class_priors,
    model_anchor,
    multiclass_log_offsets,
    predict_classes,
)

RAW_HALF = "raw 0.5"
RULES = (*REPORTED_RULES, RAW_HALF)
#: The target of the default rule: its test balanced accuracy within this of the best rule's ...
BA_MARGIN = 0.02
#: ... and min(sensitivity, specificity) at least this wherever the test AUC is at least AUC_FLOOR.
MIN_RATE, AUC_FLOOR = 0.75, 0.90


def rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores >= threshold
    positive = labels == 1
    sens = float(predicted[positive].mean()) if positive.any() else math.nan
    spec = float((~predicted[~positive]).mean()) if (~positive).any() else math.nan
    return {"threshold": float(threshold), "sensitivity": sens, "specificity": spec,
            "balanced_accuracy": (sens + spec) / 2, "accuracy": float((predicted == positive).mean())}


def binary_run(z: Any) -> dict[str, Any]:
    held, held_labels = z["heldout_probs"][:, -1], z["heldout_labels"].astype(np.int64)
    test, test_labels = z["test_probs"][:, -1], z["test_labels"].astype(np.int64)
    calibration = fit_platt(held, held_labels)
    cal_held, cal_test = calibration.apply(held), calibration.apply(test)
    counts = z["train_counts"]
    # Every model here trained with class weights (operating_points.COMMON), as final's members do by default.
    anchor = float(calibration.apply(np.array([model_anchor(True, counts[1] / counts.sum())]))[0])
    by_rule = {}
    for rule in RULES:
        if rule == RAW_HALF:
            by_rule[rule] = rates(test, test_labels, 0.5)
        else:
            by_rule[rule] = rates(cal_test, test_labels, choose_threshold(cal_held, held_labels, rule, anchor).value)
    run = {"test_auc": float(roc_auc_score(test_labels, test)), "heldout_images": int(len(held_labels)),
           "heldout_positive_share": float(held_labels.mean()), "test_positive_share": float(test_labels.mean()),
           "calibration": calibration.to_dict(),
           "ece_before": expected_calibration_error(test, test_labels),
           "ece_after": expected_calibration_error(cal_test, test_labels),
           "heldout_ece_before": expected_calibration_error(held, held_labels),
           "heldout_ece_after": expected_calibration_error(cal_held, held_labels),
           "by_rule": by_rule}
    if "fold_test_probs" in z.files:
        run["fold_ensemble"] = fold_ensemble(z, calibration, cal_held, held_labels, anchor)
    return run


def fold_ensemble(z: Any, calibration: Any, cal_held: np.ndarray, held_labels: np.ndarray,
                  anchor: float) -> dict[str, Any]:
    """Test AUC and balanced accuracy of the full model, the k fold models' mean, and all k + 1 averaged.

    The held-out (out-of-fold) scores and the map fitted on them choose every variant's threshold:
    no variant has held-out scores of its own.
    """
    test_labels = z["test_labels"].astype(np.int64)
    full = z["test_probs"][:, -1]
    folds = z["fold_test_probs"][:, :, -1]
    threshold = choose_threshold(cal_held, held_labels, DEFAULT_OPERATING_POINT, anchor).value
    out = {}
    for name, scores in (("full model", full), ("fold models' mean", folds.mean(axis=0)),
                         ("full and fold models' mean", np.vstack([folds, full[None]]).mean(axis=0))):
        out[name] = {"test_auc": float(roc_auc_score(test_labels, scores)),
                     **rates(calibration.apply(scores), test_labels, threshold)}
    return out


def multiclass_run(z: Any, class_weighted: bool = True) -> dict[str, Any]:
    probs, labels = z["test_probs"], z["test_labels"].astype(np.int64)
    classes = probs.shape[1]
    priors = class_priors(np.repeat(np.arange(classes), z["train_counts"]), classes)
    by_rule = {}
    for rule in MULTICLASS_RULES:
        predicted = predict_classes(probs, multiclass_log_offsets(rule, priors, class_weighted))
        recalls = [float((predicted[labels == k] == k).mean()) for k in range(classes) if (labels == k).any()]
        by_rule[rule] = {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.mean(recalls)),
                         "min_recall": float(min(recalls))}
    majority = np.bincount(labels, minlength=classes).max() / len(labels)
    return {"test_macro_auc": float(roc_auc_score(labels, probs, multi_class="ovr")),
            "majority_class_accuracy": float(majority), "by_rule": by_rule}


def summarise_binary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per rule: mean test balanced accuracy, sensitivity and specificity over the task's runs; the
    default's gap to the best rule, and the runs where the default breaks the min-rate target."""
    rules = {}
    for rule in RULES:
        got = [r["by_rule"][rule] for r in runs.values()]
        rules[rule] = {k: float(np.mean([g[k] for g in got]))
                       for k in ("balanced_accuracy", "sensitivity", "specificity", "accuracy")}
        rules[rule]["min_sens_spec"] = float(np.mean([min(g["sensitivity"], g["specificity"]) for g in got]))
    best_rule = max(rules, key=lambda r: rules[r]["balanced_accuracy"])
    default = rules[DEFAULT_OPERATING_POINT]
    failures = [name for name, r in runs.items() if r["test_auc"] >= AUC_FLOOR
                and min(r["by_rule"][DEFAULT_OPERATING_POINT]["sensitivity"],
                        r["by_rule"][DEFAULT_OPERATING_POINT]["specificity"]) < MIN_RATE]
    gap = rules[best_rule]["balanced_accuracy"] - default["balanced_accuracy"]
    return {"runs": len(runs), "test_auc": float(np.mean([r["test_auc"] for r in runs.values()])),
            "ece_before": float(np.mean([r["ece_before"] for r in runs.values()])),
            "ece_after": float(np.mean([r["ece_after"] for r in runs.values()])),
            "by_rule": rules, "best_rule": best_rule, "default_gap_to_best": float(gap),
            "default_within_margin": bool(gap <= BA_MARGIN), "default_min_rate_failures": failures,
            "ensemble": _ensemble_summary(runs)}


def _ensemble_summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    with_folds = [r["fold_ensemble"] for r in runs.values() if "fold_ensemble" in r]
    if not with_folds:
        return None
    return {name: {k: float(np.mean([f[name][k] for f in with_folds]))
                   for k in ("test_auc", "balanced_accuracy", "accuracy")} for name in with_folds[0]}


def summarise_multiclass(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rules = {rule: {k: float(np.mean([r["by_rule"][rule][k] for r in runs.values()]))
                    for k in ("accuracy", "balanced_accuracy", "min_recall")} for rule in MULTICLASS_RULES}
    best = max(rules, key=lambda r: rules[r]["balanced_accuracy"])
    gap = rules[best]["balanced_accuracy"] - rules[DEFAULT_MULTICLASS_OPERATING_POINT]["balanced_accuracy"]
    return {"runs": len(runs), "by_rule": rules, "best_rule": best, "default_gap_to_best": float(gap),
            "default_within_margin": bool(gap <= BA_MARGIN),
            "majority_class_accuracy": float(np.mean([r["majority_class_accuracy"] for r in runs.values()]))}


# --- synthetic: binormal logits, a shifted test split, and scores collapsed toward 0 ----------------

SIZES = {"21/57 (a BreastMNIST-size val with cv off)": (21, 57), "67/194 (half of PneumoniaMNIST val)": (67, 194),
         "168/456 (out-of-fold, 624 images)": (168, 456)}
SEPARATIONS = (1.5, 3.0)
#: (name, logit offset of both classes on held-out and test, logit shift of the test negatives)
SCENARIOS = (("same distribution", 0.0, 0.0), ("test negatives shifted +1", 0.0, 1.0),
             ("scores collapsed toward 0 (logits -4)", -4.0, 0.0))


def _population(t_logit: float, d: float, offset: float, shift: float) -> dict[str, float]:
    sens = float(norm.sf(t_logit, loc=d / 2 + offset, scale=1.0))
    spec = float(norm.cdf(t_logit, loc=-d / 2 + offset + shift, scale=1.0))
    return {"sensitivity": sens, "specificity": spec, "balanced_accuracy": (sens + spec) / 2}


def synthetic(draws: int, seed: int) -> dict[str, Any]:
    """Each rule's population balanced accuracy, sensitivity and specificity on 'test' after choosing
    on a drawn held-out set (calibrated as ``final`` does), mean over draws, per scenario."""
    rng = np.random.default_rng(seed)
    out = {}
    for (size_name, (n_neg, n_pos)), d, (scenario, offset, shift) in itertools.product(
            SIZES.items(), SEPARATIONS, SCENARIOS):
        got: dict[str, list[dict[str, float]]] = {rule: [] for rule in RULES}
        for _ in range(draws):
            logits = np.concatenate([rng.normal(-d / 2, 1, n_neg), rng.normal(d / 2, 1, n_pos)]) + offset
            scores = 1 / (1 + np.exp(-logits))
            labels = np.repeat([0, 1], [n_neg, n_pos])
            calibration = fit_platt(scores, labels)
            calibrated = calibration.apply(scores)
            anchor = float(calibration.apply(np.array([0.5]))[0])  # the scores' own balanced point
            for rule in RULES:
                if rule == RAW_HALF:
                    t = 0.0
                else:
                    raw = calibration.raw_threshold(choose_threshold(calibrated, labels, rule, anchor).value)
                    t = math.log(raw / (1 - raw)) if 0 < raw < 1 else (math.inf if raw >= 1 else -math.inf)
                got[rule].append(_population(t, d, offset, shift))
        name = f"{scenario}; held-out {size_name}; separation d={d}"
        out[name] = {rule: {k: float(np.mean([g[k] for g in values])) for k in values[0]}
                     | {"min_sens_spec": float(np.mean([min(g["sensitivity"], g["specificity"]) for g in values]))}
                     for rule, values in got.items()}
        best = max(RULES, key=lambda r: out[name][r]["balanced_accuracy"])
        out[name]["_best_rule"] = best
        out[name]["_default_gap_to_best"] = (out[name][best]["balanced_accuracy"]
                                             - out[name][DEFAULT_OPERATING_POINT]["balanced_accuracy"])
    return out


def synthetic_multiclass(seed: int, n: int = 20000) -> dict[str, Any]:
    """Five ordered grades at retina-like shares (0.44 / 0.12 / 0.20 / 0.14 / 0.10), overlapping
    Gaussians along one axis: a class-weighted model's ideal probabilities (the likelihoods
    normalised), read at ``balanced`` and ``prior``, with the majority-class baseline."""
    rng = np.random.default_rng(seed)
    priors = np.array([0.44, 0.12, 0.20, 0.14, 0.10])
    labels = rng.choice(len(priors), size=n, p=priors)
    x = labels * 1.0 + rng.normal(size=n)
    log_lik = -0.5 * (x[:, None] - np.arange(len(priors))[None]) ** 2
    weighted = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    weighted /= weighted.sum(axis=1, keepdims=True)
    out = {"majority_class_accuracy": float(priors.max())}
    for rule in MULTICLASS_RULES:
        predicted = predict_classes(weighted, multiclass_log_offsets(rule, priors, True))
        recalls = [float((predicted[labels == k] == k).mean()) for k in range(len(priors))]
        out[rule] = {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.mean(recalls)),
                     "min_recall": float(min(recalls))}
    return out


def evaluate(args: argparse.Namespace) -> None:
    files = sorted((args.work / "scores").glob("*.npz"))
    binary: dict[str, dict[str, dict[str, Any]]] = {}
    multiclass: dict[str, dict[str, dict[str, Any]]] = {}
    for path in files:
        if path.name.endswith(".tmp.npz"):
            continue
        task = next(t for t in ("pneumonia-full", "pneumonia-small", "brain4-full", "brain4-small", "brain-full",
                                "brain-small") if path.stem.startswith(t + "-"))
        with np.load(path, allow_pickle=False) as z:
            if z["test_probs"].shape[1] == 2:
                binary.setdefault(task, {})[path.stem] = binary_run(z)
            else:
                multiclass.setdefault(task, {})[path.stem] = multiclass_run(z)
    doc: dict[str, Any] = {
        "command": "benchmarks/operating_points.py" + (" --synthetic" if args.synthetic else ""),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(), "default_binary": DEFAULT_OPERATING_POINT,
        "default_multiclass": DEFAULT_MULTICLASS_OPERATING_POINT,
        "target": f"default's test balanced accuracy within {BA_MARGIN} of the best rule's on every task; "
                  f"min(sensitivity, specificity) >= {MIN_RATE} wherever test AUC >= {AUC_FLOOR}",
        "binary": {task: {"summary": summarise_binary(runs), "runs": runs} for task, runs in sorted(binary.items())},
        "multiclass": {task: {"summary": summarise_multiclass(runs), "runs": runs}
                       for task, runs in sorted(multiclass.items())},
    }
    if args.synthetic:
        doc["synthetic"] = synthetic(args.draws, seed=0)
        doc["synthetic_multiclass"] = synthetic_multiclass(seed=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print_tables(doc)


def print_tables(doc: dict[str, Any]) -> None:
    print(f"default: {doc['default_binary']} (two classes), {doc['default_multiclass']} (more)")
    for task, entry in doc["binary"].items():
        s = entry["summary"]
        print(f"\n### {task}: {s['runs']} runs, test AUC {s['test_auc']:.3f}, ECE {s['ece_before']:.3f} -> "
              f"{s['ece_after']:.3f}; best rule {s['best_rule']}, default gap {s['default_gap_to_best']:+.3f}"
              f"{'' if s['default_within_margin'] else ' (OVER the margin)'}; min-rate failures: "
              f"{s['default_min_rate_failures'] or 'none'}")
        print("| rule | balanced accuracy | sensitivity | specificity | min(sens, spec) | accuracy |")
        print("| --- | --- | --- | --- | --- | --- |")
        for rule, r in s["by_rule"].items():
            print(f"| {rule} | {r['balanced_accuracy']:.3f} | {r['sensitivity']:.3f} | {r['specificity']:.3f} | "
                  f"{r['min_sens_spec']:.3f} | {r['accuracy']:.3f} |")
        if s["ensemble"]:
            print("fold models: " + "; ".join(f"{k}: AUC {v['test_auc']:.4f}, BA {v['balanced_accuracy']:.3f}, "
                                              f"accuracy {v['accuracy']:.3f}" for k, v in s["ensemble"].items()))
    for task, entry in doc["multiclass"].items():
        s = entry["summary"]
        print(f"\n### {task} (multi-class): {s['runs']} runs; "
              f"majority-class accuracy {s['majority_class_accuracy']:.3f}")
        for rule, r in s["by_rule"].items():
            print(f"  {rule}: accuracy {r['accuracy']:.3f}, balanced accuracy {r['balanced_accuracy']:.3f}, "
                  f"min recall {r['min_recall']:.3f}")
    if doc.get("synthetic_multiclass"):
        m = doc["synthetic_multiclass"]
        print(f"\nsynthetic 5 grades (retina-like shares), majority-class accuracy {m['majority_class_accuracy']:.3f}: "
              + ", ".join(f"{rule}: accuracy {m[rule]['accuracy']:.3f}, balanced accuracy "
                          f"{m[rule]['balanced_accuracy']:.3f}" for rule in MULTICLASS_RULES))
    for name, rules in (doc.get("synthetic") or {}).items():
        print(f"\n{name}: best {rules['_best_rule']}, default gap {rules['_default_gap_to_best']:+.3f}; "
              + ", ".join(f"{rule} {rules[rule]['balanced_accuracy']:.3f} ({rules[rule]['min_sens_spec']:.2f})"
                          for rule in RULES))
