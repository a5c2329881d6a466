"""Search quality: TPE + ASHA versus random search + ASHA, several seeds.

The demo sweep (spaces/demo.yaml, PneumoniaMNIST at 28 px) runs with Optuna's TPE sampler and
with its random sampler, each with ASHA, for every seed. Both spend epochs as ASHA allows, so
they are compared on one axis: the best val AUC reached after k epochs of training spent (all
trials together, in the order Tune received the results), up to the smallest total any run spent.
Saved: the table (JSON + printed) and a PNG plot of best val AUC against epochs spent (each
seed thin, the mean over seeds thick).

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/search_quality.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from demo_sweeps import best_so_far, run_demo  # a sibling module: this script's folder is first on sys.path

SAMPLERS = ("tpe", "random")


def _at(curve: list[tuple[int, float]], spent: int) -> float:
    """Best val AUC after ``spent`` epochs (the curve's last value once the run is over)."""
    return curve[min(spent, len(curve)) - 1][1]


def plot(runs: list[dict], budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"tpe": "tab:blue", "random": "tab:orange"}
    for sampler in SAMPLERS:
        curves = [best_so_far(r["history"]) for r in runs if r["sampler"] == sampler]
        for curve in curves:
            ax.plot([s for s, _ in curve], [v for _, v in curve], color=colors[sampler], alpha=0.35, lw=1)
        xs = list(range(1, budget + 1))
        ax.plot(xs, [sum(_at(c, x) for c in curves) / len(curves) for x in xs], color=colors[sampler], lw=2.5,
                label=f"{sampler} + ASHA (mean of {len(curves)} seeds)")
    ax.axvline(budget, color="grey", ls=":", lw=1)
    ax.set_xlabel("epochs spent (all trials)")
    ax.set_ylabel("best val AUC so far")
    ax.set_title("PneumoniaMNIST demo space: TPE vs random, both with ASHA", fontsize=11)
    low = min(_at(best_so_far(r["history"]), 3) for r in runs)
    ax.set_ylim(max(0.9, low - 0.005), 1.0)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--out", default="benchmarks/results/search_quality.json")
    parser.add_argument("--plot", default="benchmarks/results/search_quality.png")
    args = parser.parse_args()
    runs = [run_demo(sampler, seed, "asha", args.samples) for seed in args.seeds for sampler in SAMPLERS]
    budget = min(r["epochs_run"] for r in runs)
    checkpoints = sorted({c for c in (5, 10, 15, 20, budget) if c <= budget})
    table = []
    for sampler in SAMPLERS:
        mine = [r for r in runs if r["sampler"] == sampler]
        curves = [best_so_far(r["history"]) for r in mine]
        row = {"sampler": sampler, "seeds": [r["seed"] for r in mine],
               "epochs_run": [r["epochs_run"] for r in mine],
               "best_val_auc_final": [r["best_val_auc"] for r in mine],
               "mean_best_at": {str(c): sum(_at(cv, c) for cv in curves) / len(curves) for c in checkpoints}}
        table.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"budget": budget, "table": table, "runs": runs}, indent=1))
    plot(runs, budget, Path(args.plot))
    header = "".join(f"{'@' + str(c) + ' ep':>10}" for c in checkpoints)
    print(f"\nmean best val AUC over seeds {args.seeds} after k epochs spent (common budget {budget} epochs):")
    print(f"{'sampler':<8}{header}{'final (each seed)':>40}")
    for row in table:
        cells = "".join(f"{row['mean_best_at'][str(c)]:>10.4f}" for c in checkpoints)
        finals = ", ".join(f"{v:.4f}/{e}ep" for v, e in zip(row["best_val_auc_final"], row["epochs_run"]))
        print(f"{row['sampler']:<8}{cells}{finals:>40}")
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
