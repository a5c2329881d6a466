"""Which threshold rule should ``medtune final`` use when validation is small or nearly separated?

The rules of ``medtune.trainables.binary_report.choose_threshold`` are compared on synthetic tasks where the
truth is known, so the answer does not come from one data set's test split: validation scores
are drawn from two normal distributions in logit space (negatives around -d/2, positives around
+d/2, each with its own spread), at the validation sizes medtune meets (a BreastMNIST-like 21/57
split, a half of PneumoniaMNIST's val 67/194, out-of-fold predictions of a 546+78 set 168/456) and
separations from overlapping (d = 1.5) to nearly separated (d = 6). For each rule and draw, the
population sensitivity + specificity - 1 (Youden's J) at the chosen threshold is computed exactly
from the normal CDFs, on the validation distribution and on a shifted one whose negatives score
``--shift`` higher in logit space (what PneumoniaMNIST's and Kermany's test splits do). The
result is each rule's mean J lost against the best possible threshold.

    .venv/bin/python benchmarks/threshold_rules.py --draws 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

from medtune.trainables.binary_report import THRESHOLD_RULES, choose_threshold

SIZES = {"21/57 (BreastMNIST val)": (21, 57), "67/194 (half PneumoniaMNIST val)": (67, 194),
         "168/456 (out-of-fold, 624 images)": (168, 456)}
SEPARATIONS = (1.5, 3.0, 6.0)
SPREADS = ((1.0, 1.0), (1.0, 2.0), (2.0, 1.0))  # (negatives, positives) standard deviations in logit space


def population_j(threshold: float, d: float, spreads: tuple[float, float], shift: float = 0.0) -> float:
    """Sensitivity + specificity - 1 at ``threshold`` for the binormal task (negatives moved by ``shift``)."""
    t = np.log(threshold / (1 - threshold)) if 0 < threshold < 1 else (np.inf if threshold >= 1 else -np.inf)
    sensitivity = norm.sf(t, loc=d / 2, scale=spreads[1])
    specificity = norm.cdf(t, loc=-d / 2 + shift, scale=spreads[0])
    return float(sensitivity + specificity - 1)


def best_j(d: float, spreads: tuple[float, float], shift: float = 0.0) -> float:
    grid = 1 / (1 + np.exp(-np.linspace(-15, 15, 6001)))
    return max(population_j(t, d, spreads, shift) for t in grid)


def run(draws: int, shift: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rules = (*THRESHOLD_RULES, "0.5")
    cases = []
    for (size_name, (n_neg, n_pos)), d, spreads in itertools.product(SIZES.items(), SEPARATIONS, SPREADS):
        ideal = best_j(d, spreads)
        ideal_shifted = best_j(d, spreads, shift)
        lost = {r: [] for r in rules}
        lost_shifted = {r: [] for r in rules}
        for _ in range(draws):
            logits = np.concatenate([rng.normal(-d / 2, spreads[0], n_neg), rng.normal(d / 2, spreads[1], n_pos)])
            scores = 1 / (1 + np.exp(-logits))
            labels = np.repeat([0, 1], [n_neg, n_pos])
            for rule in rules:
                t = choose_threshold(scores, labels, rule).value
                lost[rule].append(ideal - population_j(t, d, spreads))
                lost_shifted[rule].append(ideal_shifted - population_j(t, d, spreads, shift))
        cases.append({"size": size_name, "d": d, "spreads": spreads,
                      "j_lost": {r: float(np.mean(v)) for r, v in lost.items()},
                      "j_lost_shifted": {r: float(np.mean(v)) for r, v in lost_shifted.items()}})
    summary = {r: {"j_lost": float(np.mean([c["j_lost"][r] for c in cases])),
                   "j_lost_shifted": float(np.mean([c["j_lost_shifted"][r] for c in cases])),
                   "worst_case_j_lost": float(max(c["j_lost"][r] for c in cases))} for r in rules}
    return {"draws": draws, "shift": shift, "seed": seed, "cases": cases, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=400, help="validation sets drawn per case")
    parser.add_argument("--shift", type=float, default=1.0, help="logit shift of the negatives on 'test'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/threshold_rules.json")
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args.draws, args.shift, args.seed)
    result.update(date=time.strftime("%Y-%m-%d"), seconds=time.perf_counter() - started, python=platform.python_version())
    print("| rule | mean J lost (same distribution) | worst case | mean J lost (negatives shifted) |")
    print("| --- | --- | --- | --- |")
    for rule, row in result["summary"].items():
        print(f"| {rule} | {row['j_lost']:.4f} | {row['worst_case_j_lost']:.4f} | {row['j_lost_shifted']:.4f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
