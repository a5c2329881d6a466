"""The training half of ``medtune final``: which images train, for how long, and which choose the threshold.

The model trains with the same training function the trials use. The decision threshold of a
two-class task is chosen on predictions of images the model did not train on (and the same
predictions calibrate the scores first: ``final_calibration``):

* a sweep that selected on val: train on train plus half of val (stratified, seeded); the other
  half of val chooses the threshold (``final_splits``);
* a cross-validated sweep (``search.cv``, small data sets): k fold models give out-of-fold
  predictions for every image of train + val, which choose the threshold; then the model trains
  on all of train + val (``train_cv_member``).

Multi-label findings are thresholded one by one, so they hold out as two classes do. With more
than two classes the predicted class is the most probable one and there is no threshold
to choose, so nothing is held out: the model trains on all of train + val (``cv_final_splits``).
(After a cross-validated sweep the fold models still train first, as for two classes; their
out-of-fold predictions are not used.)

The budget (steps or images) is the trials' own, so the epoch count follows from the data size as
it did in the trials (``final_budget``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from medtune.search.results.final_members import FinalMember, FinalTraining
from medtune.search.run.trial_values import trial_fixed_values
from medtune.search.spec.sweep_spec import SpecError, SweepSpec, budget_fields
from medtune.trainables.budget import units_per_epoch
from medtune.trainables.config import TrialConfig
from medtune.trainables.data import DatasetSplits, SplitArrays
from medtune.trainables.data.splits import carve_val, kfold_indices, pooled, stratified_subset, take
from medtune.trainables.evaluate import predict_split
from medtune.trainables.objective import DEFAULT_OBJECTIVE, Objective
from medtune.trainables.progress import EpochProgress
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import run_training

#: Share of val held out of a two-class final training to choose the threshold on.
CALIBRATION_FRACTION = 0.5

#: What the training loop reports on and keeps the best checkpoint by while the final model trains.
MONITOR = Objective(DEFAULT_OBJECTIVE, "max")

#: Images of the per-epoch 'val' sample when every image of train + val trains.
MONITOR_IMAGES = 256


def train_members(spec: SweepSpec, configs: list[dict[str, Any]], splits: Any, budget: dict[str, Any], out: Path,
                  calibration_fraction: float = CALIBRATION_FRACTION) -> FinalTraining:
    """Train every configuration of the final run (``out/member<i>`` holds each one's checkpoints)."""
    folds = spec.search.cv if isinstance(spec.search.cv, int) else None
    started = time.perf_counter()
    if folds:
        data = cv_final_splits(splits)
        members = [train_cv_member(config, splits, folds, budget, out / f"member{i}")
                   for i, config in enumerate(configs)]
        source = (f"out-of-fold predictions of {folds}-fold cross-validation over train + val "
                  f"({len(data.train.labels)} images)")
    elif len(splits.class_names) > 2 and not splits.multilabel:  # no threshold to choose: nothing is held out
        data = cv_final_splits(splits)
        members = [train_member(config, data, budget, out / f"member{i}") for i, config in enumerate(configs)]
        source = "none"
    else:
        data = final_splits(splits, calibration_fraction, seed=spec.data.split_seed)
        members = [train_member(config, data, budget, out / f"member{i}") for i, config in enumerate(configs)]
        source = f"held-out {calibration_fraction:g} of val ({len(data.val.labels)} images)"
    return FinalTraining(members, data, source, time.perf_counter() - started)


def final_splits(splits: Any, calibration_fraction: float, seed: int) -> Any:
    """Train on train + (1 - fraction) of val; keep ``fraction`` of val to pick the threshold."""
    keep_idx, calibration_idx = carve_val(splits.val.labels, calibration_fraction, seed, len(splits.class_names),
                                          groups=splits.val.groups)  # a patient's images on one side
    train = SplitArrays(images=np.concatenate([np.asarray(splits.train.images),
                                               np.asarray(splits.val.images[keep_idx])]),
                        labels=np.concatenate([splits.train.labels, splits.val.labels[keep_idx]]))
    calibration = take(splits.val.images, splits.val.labels, calibration_idx)
    return DatasetSplits(train=train, val=calibration, test=splits.test, class_names=splits.class_names,
                         fingerprint=splits.fingerprint)


def cv_final_splits(splits: Any, monitor: int = MONITOR_IMAGES, seed: int = 0) -> Any:
    """All of train + val to train on; a stratified sample of it (at most ``monitor`` images) as the
    per-epoch 'val' the training loop reports on, since no image is left out to report on."""
    pool = pooled(splits.train, splits.val)
    idx = stratified_subset(pool.labels, monitor, seed, len(splits.class_names))
    return DatasetSplits(train=pool, val=take(pool.images, pool.labels, idx), test=splits.test,
                         class_names=splits.class_names, fingerprint=splits.fingerprint)


def member_configs(spec: SweepSpec, ensemble: int) -> list[dict[str, Any]]:
    """The best configuration, then the next ones the sweep ranked (``provenance.top_configs``)."""
    base = trial_fixed_values(spec)
    configs = [base]
    if ensemble > 1:
        others = list(spec.provenance.get("top_configs") or [])[1:]
        if len(others) < ensemble - 1:
            raise SpecError(spec.source, [("provenance.top_configs", f"--ensemble {ensemble} needs the sweep's top "
                                           f"{ensemble} configurations; the file has {len(others) + 1}. Write it with "
                                           f"'medtune best EXPERIMENT --top {ensemble}'")])
        for fixed in others[: ensemble - 1]:
            configs.append({**base, **fixed})
    return configs


def _train(cfg: Any, data: Any, workdir: Path, label: str) -> Any:
    """``run_training`` with a progress bar, the best checkpoint kept by ``MONITOR`` in ``workdir``."""
    reporter = EpochProgress(LocalReporter(workdir, metric=MONITOR.name, mode=MONITOR.mode), label, MONITOR.name)
    try:
        return run_training(cfg, reporter, data=data)
    finally:
        reporter.close()


def train_member(config: dict[str, Any], data: Any, budget: dict[str, Any], workdir: Path) -> FinalMember:
    """Train one configuration for ``budget`` on ``data.train``; threshold scores from ``data.val``."""
    cfg = TrialConfig.from_dict({**config, **budget, "cv_folds": None})
    outcome = _train(cfg, data, workdir, f"final {cfg.architecture}")
    cfg = outcome.config  # on colour data its channels are pinned (with_data_channels): the model's bundle needs them
    val_probs, _ = predict_split(outcome.model, cfg, data.val)
    test_probs, _ = predict_split(outcome.model, cfg, data.test)
    multilabel = data.multilabel
    return FinalMember(cfg.to_dict(), outcome.model, member_scores(val_probs, multilabel),
                       member_scores(test_probs, multilabel), data.val.labels, outcome.epochs)


def member_scores(probs: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """Two classes: the positive (last) class's probability, which thresholds and ROC curves take;
    more: every class's, since the prediction is the most probable class; multi-label findings:
    every finding's own probability (each thresholded on its own)."""
    return probs[:, -1] if probs.shape[1] == 2 and not multilabel else probs


def train_cv_member(config: dict[str, Any], splits: Any, folds: int, budget: dict[str, Any],
                    workdir: Path) -> FinalMember:
    """k fold models for out-of-fold threshold scores, then one model on all of train + val."""
    cfg = TrialConfig.from_dict({**config, **budget, "cv_folds": folds})
    cv = _train(cfg, splits, workdir / "folds", f"final {cfg.architecture}, {folds} folds")
    member = train_member(config, cv_final_splits(splits), budget, workdir / "all")
    return FinalMember(member.config, member.model, member_scores(cv.oof_probs, splits.multilabel), member.test_scores,
                       cv.oof_labels, member.epochs)


def trial_train_images(spec: SweepSpec, splits: Any) -> int:
    """How many images each trial of the sweep trained on (a fold's share under cross-validation)."""
    if not isinstance(spec.search.cv, int):
        return len(splits.train.labels)
    pool = pooled(splits.train, splits.val)
    folds = kfold_indices(pool.labels, spec.search.cv, spec.data.split_seed, groups=pool.groups)
    return len(pool.labels) - max(len(f) for f in folds)


def best_trial_epoch(spec: SweepSpec) -> int:
    """The best trial's best epoch from the file's provenance, which ``--epochs best`` needs."""
    best_epoch = spec.provenance.get("best_epoch")
    if not best_epoch:
        raise SpecError(spec.source, [("provenance.best_epoch", "--epochs best needs the best trial's epoch; "
                                       "this file has none (use --epochs budget)")])
    return int(best_epoch)


def final_budget(spec: SweepSpec, mode: str, config: dict[str, Any], trial_images: int) -> dict[str, Any]:
    """The trial-config budget of the final run: the sweep's (``budget``), or the best trial's
    budget up to its best epoch (``best``), in the sweep's unit so it means the same amount of
    training on the final run's larger training set."""
    scheduler = spec.search.scheduler
    if mode != "best":
        return budget_fields(scheduler)
    best_epoch = best_trial_epoch(spec)
    per_epoch = units_per_epoch(scheduler.unit, trial_images, int(config.get("batch_size", 32)))
    return budget_fields(dataclasses.replace(scheduler, max_t=int(best_epoch) * per_epoch))
