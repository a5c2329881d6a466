"""Warnings ``medtune validate`` gives about a sweep that is valid but unlikely to generalise.

Two ways a search on a small data set goes wrong without any error:

* the budget is too short: an epoch budget that suits PneumoniaMNIST is a few dozen optimizer
  steps on a 500-image set, so every trial is undertrained and the search ranks warm-ups;
* validation is too small: choosing the best of many configurations by a few dozen validation
  images picks the luckiest one. The warning puts a number on it: the standard error of a
  validation AUC (Hanley & McNeil, 1982) and how far the best of N equally good trials is
  expected to rise above its true value by chance alone (about SE x sqrt(2 ln N)).
"""

from __future__ import annotations

import math
from typing import Any

from medtune.search.spec.sections import CV_AUTO_MIN_VAL_PER_CLASS
from medtune.search.spec.sweep_spec import SweepSpec
from medtune.trainables.budget import steps_per_epoch
from medtune.trainables.config import TrialConfig

#: Fewer optimizer steps than this per trial is a warm-up, not a fine-tuning run. MedMNIST's
#: ResNet baselines take about 400 steps (100 epochs at batch 128) on their smallest set.
MIN_STEPS_PER_TRIAL = 300
#: The AUC at which the standard error is quoted (a typical value for a fine-tuned model).
TYPICAL_AUC = 0.9


def hanley_mcneil_se(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an ROC AUC estimated from ``positives`` and ``negatives`` images."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc))
    return math.sqrt(max(variance, 0.0) / (positives * negatives))


def _batch_sizes(spec: SweepSpec) -> list[int]:
    if "batch_size" in spec.space:
        return [int(v) for v in spec.space["batch_size"].candidate_values()]
    return [int(spec.fixed.get("batch_size", TrialConfig().batch_size))]


def _class_counts(summary: dict[str, Any], split: str) -> dict[str, int]:
    return {k: int(v) for k, v in summary.get("planned", {}).get(split, {}).items() if k != "total"}


def budget_warning(spec: SweepSpec, summary: dict[str, Any]) -> str | None:
    """Fewer than ``MIN_STEPS_PER_TRIAL`` optimizer steps for a full trial, even at the smallest batch."""
    train = sum(_class_counts(summary, "train").values())
    if isinstance(spec.search.cv, int):
        train += sum(_class_counts(summary, "val").values())
        train -= math.ceil(train / spec.search.cv)
    if train <= 0:
        return None
    batch = min(_batch_sizes(spec))
    scheduler = spec.search.scheduler
    steps = {"epochs": scheduler.max_t * steps_per_epoch(train, batch), "steps": scheduler.max_t,
             "images": scheduler.max_t // batch}[scheduler.unit]
    if steps >= MIN_STEPS_PER_TRIAL:
        return None
    return (f"search.scheduler.max_t: a full trial trains only {steps} optimizer steps ({scheduler.max_t} "
            f"{scheduler.unit} on {train} training images at batch {batch}); fine-tuning usually needs at least "
            f"{MIN_STEPS_PER_TRIAL}. Count the budget in steps or images (search.scheduler.unit), which means the "
            f"same on any data set, or raise max_t")


def validation_warning(spec: SweepSpec, summary: dict[str, Any]) -> str | None:
    """Selection by a val split with fewer than ``CV_AUTO_MIN_VAL_PER_CLASS`` images in a class."""
    if spec.search.cv:
        return None
    counts = _class_counts(summary, "val")
    if not counts or min(counts.values()) >= CV_AUTO_MIN_VAL_PER_CLASS:
        return None
    smallest, largest = min(counts.values()), max(counts.values())
    se = hanley_mcneil_se(TYPICAL_AUC, max(smallest, 1), max(largest, 1))
    trials = spec.search.num_samples
    lift = se * math.sqrt(2 * math.log(trials)) if trials > 1 else 0.0
    return (f"search.cv: the val split has only {smallest} images in its smallest class "
            f"({', '.join(f'{k} {v}' for k, v in counts.items())}); a val AUC near {TYPICAL_AUC} has a standard "
            f"error of about {se:.3f} there, and the best of {trials} trials is expected to score about {lift:.3f} "
            f"above its true value by chance. Set search.cv: auto (or a number of folds) to select by "
            f"cross-validation over train + val")


def small_data_warnings(spec: SweepSpec, summary: dict[str, Any]) -> list[str]:
    """Every warning that applies, for ``medtune validate`` and the start of a sweep."""
    return [w for w in (budget_warning(spec, summary), validation_warning(spec, summary)) if w]


def weights_warnings(spec: SweepSpec) -> list[str]:
    """Architectures that would need timm's hub for ImageNet weights (fine online, fails offline)."""
    from medtune.trainables.models import get_architecture, resolve_weights_dir

    if spec.fixed.get("pretrained", "none") != "imagenet":
        return []
    folder = resolve_weights_dir(None)
    out = []
    for arch in spec.architectures:
        info = get_architecture(arch)
        if not info.has_imagenet_weights:
            continue
        if folder is None or not any((folder / name).exists() for name in info.local_weights):
            out.append(f"{arch}: no local ImageNet weights (MEDTUNE_WEIGHTS_DIR={folder}); "
                       f"trials will download them from timm's hub")
    return out
