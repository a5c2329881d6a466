"""``medtune final``: train the chosen configuration once more and evaluate it once on test.

The sweep never looks at the test split; this is the one place that does. The configuration
(``best_config.yaml`` from ``medtune sweep``/``medtune best``) is trained with the same training
function the trials use, and the decision threshold is chosen on predictions of images it did not
train on:

* a sweep that selected on val: the model trains on train plus half of val (stratified, seeded);
  the other half of val chooses the threshold;
* a cross-validated sweep (``search.cv``, small data sets): k fold models give out-of-fold
  predictions for every image of train + val, which choose the threshold; then the model trains
  on all of train + val. The budget (steps or images) is the trials' own, so the epoch count
  follows from the data size as it did in the folds.

The threshold rule (``medtune.trainables.report.choose_threshold``) takes the middle, in logit space, of
the thresholds that tie for the best Youden's J, so a near-perfectly separated validation set
does not push it to an extreme. Then the test split is scored once: the report
(``medtune.trainables.report``) with 95% bootstrap intervals, the ROC curve and confusion matrix as
images, the saved predictions, and the model, all logged to one MLflow run tagged with the sweep
it came from. ``--ensemble K`` retrains the top-K configurations of the sweep and averages their
probabilities, reported side by side with the single best model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtune.search.spec.sweep_spec import SpecError, SweepSpec

log = logging.getLogger(__name__)

#: The registry alias of the version ``medtune final --register`` creates.
CHAMPION_ALIAS = "champion"

#: Share of val held out of final training to choose the threshold on.
CALIBRATION_FRACTION = 0.5


@dataclass
class FinalMember:
    """One trained model of the final run: its config, the scores that choose the threshold (with
    their labels) and its test scores."""

    config: dict[str, Any]
    model: Any
    val_scores: np.ndarray
    test_scores: np.ndarray
    val_labels: np.ndarray | None = None
    epochs: int = 0  # the epochs the model trained (its budget on its training set)


@dataclass
class FinalOutcome:
    """What a final run produced; the same facts ``report.json`` records, for callers in Python."""

    run_id: str | None
    reports: list[Any]
    out_dir: Path
    model_uri: str | None
    epochs: int
    train_seconds: float
    member_configs: list[dict[str, Any]]

    @property
    def html(self) -> Path:
        """The self-contained page (``report.html``): ``IPython.display.IFrame`` shows it in a notebook."""
        return self.out_dir / "report.html"

    def report(self) -> dict[str, Any]:
        """Everything ``report.json`` records (metrics, intervals, thresholds, calibration, configs)."""
        return json.loads((self.out_dir / "report.json").read_text())

    def metrics(self) -> dict[str, tuple[float, float, float]]:
        """The best model's test metrics: name -> (value, 95% CI low, 95% CI high)."""
        first = self.reports[0]
        return {name: (value, *first.intervals[name]) for name, value in first.metrics.items()}


def final_splits(splits: Any, calibration_fraction: float, seed: int) -> Any:
    """Train on train + (1 - fraction) of val; keep ``fraction`` of val to pick the threshold."""
    from medtune.trainables.data import DatasetSplits, SplitArrays
    from medtune.trainables.data.splits import carve_val, take

    keep_idx, calibration_idx = carve_val(splits.val.labels, calibration_fraction, seed, len(splits.class_names))
    train = SplitArrays(images=np.concatenate([np.asarray(splits.train.images), np.asarray(splits.val.images[keep_idx])]),
                        labels=np.concatenate([splits.train.labels, splits.val.labels[keep_idx]]))
    calibration = take(splits.val.images, splits.val.labels, calibration_idx)
    return DatasetSplits(train=train, val=calibration, test=splits.test, class_names=splits.class_names,
                         fingerprint=splits.fingerprint)


def member_configs(spec: SweepSpec, ensemble: int) -> list[dict[str, Any]]:
    """The best configuration, then the next ones the sweep ranked (``provenance.top_configs``)."""
    from medtune.search.run.tuner import trial_fixed_values

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


def train_member(config: dict[str, Any], data: Any, budget: dict[str, Any], workdir: Path) -> FinalMember:
    """Train one configuration for ``budget``; threshold scores from the held-out part of val."""
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.evaluate import predict_split
    from medtune.trainables.progress import EpochProgress
    from medtune.trainables.reporting import LocalReporter
    from medtune.trainables.train import run_training

    cfg = TrialConfig.from_dict({**config, **budget, "cv_folds": None})
    reporter = EpochProgress(LocalReporter(workdir, metric="val_auc", mode="max"),
                             f"final {cfg.architecture}", "val_auc")
    try:
        outcome = run_training(cfg, reporter, data=data)
    finally:
        reporter.close()
    val_probs, _ = predict_split(outcome.model, cfg, data.val)
    test_probs, _ = predict_split(outcome.model, cfg, data.test)
    return FinalMember(cfg.to_dict(), outcome.model, member_scores(val_probs), member_scores(test_probs),
                       data.val.labels, outcome.epochs)


def member_scores(probs: np.ndarray) -> np.ndarray:
    """Two classes: the positive (last) class's probability, which thresholds and ROC curves take;
    more: every class's, since the prediction is the most probable class."""
    return probs[:, -1] if probs.shape[1] == 2 else probs


def train_cv_member(config: dict[str, Any], splits: Any, folds: int, budget: dict[str, Any],
                    workdir: Path) -> FinalMember:
    """k fold models for out-of-fold threshold scores, then one model on all of train + val."""
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.progress import EpochProgress
    from medtune.trainables.reporting import LocalReporter
    from medtune.trainables.train import run_training

    cfg = TrialConfig.from_dict({**config, **budget, "cv_folds": folds})
    reporter = EpochProgress(LocalReporter(workdir / "folds", metric="val_auc", mode="max"),
                             f"final {cfg.architecture}, {folds} folds", "val_auc")
    try:
        cv = run_training(cfg, reporter, data=splits)
    finally:
        reporter.close()
    member = train_member(config, cv_final_splits(splits), budget, workdir / "all")
    return FinalMember(member.config, member.model, member_scores(cv.oof_probs), member.test_scores,
                       cv.oof_labels, member.epochs)


def cv_final_splits(splits: Any, monitor: int = 256, seed: int = 0) -> Any:
    """All of train + val to train on; a stratified sample of it (at most ``monitor`` images) as the
    per-epoch 'val' the training loop reports on, since no image is left out to report on."""
    from medtune.trainables.data import DatasetSplits
    from medtune.trainables.data.splits import pooled, stratified_subset, take

    pool = pooled(splits.train, splits.val)
    idx = stratified_subset(pool.labels, monitor, seed, len(splits.class_names))
    return DatasetSplits(train=pool, val=take(pool.images, pool.labels, idx), test=splits.test,
                         class_names=splits.class_names, fingerprint=splits.fingerprint)


def trial_train_images(spec: SweepSpec, splits: Any) -> int:
    """How many images each trial of the sweep trained on (a fold's share under cross-validation)."""
    from medtune.trainables.data.splits import kfold_indices, pooled

    if not isinstance(spec.search.cv, int):
        return len(splits.train.labels)
    pool = pooled(splits.train, splits.val)
    return len(pool.labels) - max(len(f) for f in kfold_indices(pool.labels, spec.search.cv, spec.data.split_seed))


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
    from medtune.search.spec.sweep_spec import budget_fields
    from medtune.trainables.budget import units_per_epoch

    scheduler = spec.search.scheduler
    if mode != "best":
        return budget_fields(scheduler)
    best_epoch = best_trial_epoch(spec)
    per_epoch = units_per_epoch(scheduler.unit, trial_images, int(config.get("batch_size", 32)))
    return budget_fields(dataclasses.replace(scheduler, max_t=int(best_epoch) * per_epoch))


def default_threshold_rule(config: dict[str, Any]) -> str:
    """``auto``: 0.5 for a class-weighted model, else ``youden-mid`` on held-out scores.

    A class-weighted loss already trains the model for balanced class priors, where a calibrated
    score's best sensitivity + specificity is at 0.5; choosing the threshold again on a few hundred
    held-out images adds their noise, and on test splits shifted from val (PneumoniaMNIST's,
    Kermany's) the held-out point sat at 0.04-0.05 and cost accuracy (benchmarks/small_data.py:
    0.853 against 0.878 at 0.5 over three seeds). Without class weights 0.5 reflects the training
    prevalence, so the threshold is chosen on held-out scores.
    """
    return "0.5" if config.get("class_weighted", True) else "youden-mid"


def _check_threshold_rule(rule: str, source: str) -> None:
    """An unknown threshold rule is bad input, found before anything trains."""
    import numpy as np

    from medtune.trainables.report import choose_threshold

    try:
        choose_threshold(np.array([0.2, 0.8]), np.array([0, 1]), rule)
    except ValueError as exc:
        raise SpecError(source, [("--threshold", str(exc))]) from None


def run_final(spec: SweepSpec, *, epochs: str = "budget", ensemble: int = 1, register: str | None = None,
              out_dir: str | Path | None = None, calibration_fraction: float = CALIBRATION_FRACTION,
              gradcam_samples: int = 8, threshold: str = "auto") -> FinalOutcome:
    """Train, evaluate once on test, write the report, log it all to MLflow."""
    from medtune.search.run.preflight import resolved_spec
    from medtune.trainables.data import load_splits
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.report import build_report
    from medtune.trainables.train import data_config

    if spec.space:
        raise SpecError(spec.source, [("space", "final trains one configuration: expected an empty space with every "
                                       "value under fixed (a best_config.yaml)")])
    if out_dir is not None:
        from medtune.search.run.preflight import check_output_path

        check_output_path(out_dir, "--out", spec.source, folder=True)
    if spec.mlflow.enabled:  # found now, not after the training it would fail to log
        from medtune.search.tracking.client import check_tracking_server

        check_tracking_server(spec.mlflow.tracking_uri, spec.source)
    if threshold != "auto":
        _check_threshold_rule(threshold, spec.source)
    if epochs == "best":
        best_trial_epoch(spec)  # before any data is read
    spec, _ = resolved_spec(spec)
    configs = member_configs(spec, ensemble)
    out = Path(out_dir or tempfile.mkdtemp(prefix="medtune-final-"))
    out.mkdir(parents=True, exist_ok=True)

    splits = load_splits(data_config(TrialConfig.from_dict({k: v for k, v in configs[0].items()
                                                           if k.startswith("data_") or k in ("image_size", "cache_dir")})))
    multiclass = len(splits.class_names) > 2
    if multiclass and threshold != "auto":
        raise SpecError(spec.source, [("--threshold", f"{threshold!r}: a threshold applies to two-class tasks; this one "
                                       f"has {len(splits.class_names)} classes and predicts the most probable one")])
    budget = final_budget(spec, epochs, configs[0], trial_train_images(spec, splits))
    folds = spec.search.cv if isinstance(spec.search.cv, int) else None
    started = time.perf_counter()
    if folds:
        data = cv_final_splits(splits)
        members = [train_cv_member(config, splits, folds, budget, out / f"member{i}")
                   for i, config in enumerate(configs)]
        threshold_source = (f"out-of-fold predictions of {folds}-fold cross-validation over train + val "
                            f"({len(data.train.labels)} images)")
    else:
        data = final_splits(splits, calibration_fraction, seed=spec.data.split_seed)
        members = [train_member(config, data, budget, out / f"member{i}") for i, config in enumerate(configs)]
        threshold_source = f"held-out {calibration_fraction:g} of val ({len(data.val.labels)} images)"
    train_seconds = time.perf_counter() - started
    n_epochs = members[0].epochs

    if multiclass:
        reports = _multiclass_reports(members, data)
        threshold_source = "none: with more than two classes the most probable class is predicted"
    else:
        if threshold == "auto":
            threshold = default_threshold_rule(members[0].config)
            threshold_source += (f"; rule auto: "
                                 f"{'0.5, the model was trained with class weights' if threshold == '0.5' else threshold}")
        val_labels, test_labels = members[0].val_labels, data.test.labels
        reports = [build_report("best model", members[0].val_scores, val_labels, members[0].test_scores, test_labels,
                                data.class_names, threshold_rule=threshold)]
        if len(members) > 1:
            val_mean = np.mean([m.val_scores for m in members], axis=0)
            test_mean = np.mean([m.test_scores for m in members], axis=0)
            reports.append(build_report(f"ensemble of {len(members)}", val_mean, val_labels, test_mean, test_labels,
                                        data.class_names, threshold_rule=threshold))
    _write_artifacts(out, spec, members, reports, data, n_epochs, train_seconds, threshold_source)
    try:
        _gradcam_figure(members[0], reports[0].threshold, data, out / "gradcam.png", per_group=max(1, gradcam_samples // 4))
    except Exception as exc:  # interpretability must not lose a finished final run
        log.warning("Grad-CAM failed: %s", exc)
    _write_report_html(out, spec.name)  # after Grad-CAM, whose figure it embeds
    print(_markdown(reports, f"Final test report: {spec.name}"), flush=True)
    run_id = model_uri = None
    if spec.mlflow.enabled:
        run_id, model_uri = _log_to_mlflow(spec, members, reports, data, out, n_epochs, register)
    return FinalOutcome(run_id, reports, out, model_uri, epochs=n_epochs, train_seconds=train_seconds,
                        member_configs=[m.config for m in members])


def _write_artifacts(out: Path, spec: SweepSpec, members: list[FinalMember], reports: list[Any], data: Any,
                     n_epochs: int, train_seconds: float, threshold_source: str) -> None:
    from medtune.search.results.report_html import write_calibration

    summary = {
        "sweep": spec.provenance.get("sweep"), "trial_id": spec.provenance.get("trial_id"),
        "epochs": n_epochs, "budget_unit": spec.search.scheduler.unit, "cv_folds": spec.search.cv,
        "train_images": int(len(data.train.labels)), "calibration_images": int(len(members[0].val_labels)),
        "threshold_source": threshold_source,
        "train_seconds": train_seconds, "members": [m.config for m in members],
        "reports": [r.to_dict() for r in reports],
        "class_names": list(data.class_names),
    }
    if members[0].test_scores.ndim == 1:  # a reliability diagram of the positive class's probability
        summary["calibration"] = write_calibration(out, members[0].test_scores, data.test.labels)
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=str))
    markdown = _markdown(reports, f"Final test report: {spec.name}")
    (out / "report.md").write_text(f"{markdown}\nThreshold chosen on {threshold_source}.\n")
    (out / "test_predictions.csv").write_text(_predictions_csv(members, data))
    if members[0].test_scores.ndim == 2:
        _plot_multiclass(out, reports, members, data)
    else:
        _plot_roc_and_confusion(out, reports, members, data)


def _multiclass_reports(members: list[FinalMember], data: Any) -> list[Any]:
    from medtune.trainables.multiclass_report import build_multiclass_report

    labels, names = data.test.labels, tuple(data.class_names)
    reports = [build_multiclass_report("best model", members[0].test_scores, labels, names)]
    if len(members) > 1:
        mean = np.mean([m.test_scores for m in members], axis=0)
        reports.append(build_multiclass_report(f"ensemble of {len(members)}", mean, labels, names))
    return reports


def _markdown(reports: list[Any], title: str) -> str:
    from medtune.trainables.multiclass_report import MulticlassReport, multiclass_markdown
    from medtune.trainables.report import report_markdown

    return multiclass_markdown(reports, title) if isinstance(reports[0], MulticlassReport) else report_markdown(reports, title)


def _predictions_csv(members: list[FinalMember], data: Any) -> str:
    """One row per test image: its label, then each member's score (binary: the positive class's
    probability; multi-class: one column per class)."""
    import csv
    import io

    multiclass = members[0].test_scores.ndim == 2
    header = ["label"]
    for i in range(len(members)):
        prefix = "best_model" if i == 0 else f"member{i}"
        header += [f"{prefix}_{name}" for name in data.class_names] if multiclass else [f"{prefix}_score"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i, label in enumerate(data.test.labels):
        row: list[Any] = [int(label)]
        for m in members:
            row += [repr(float(v)) for v in (m.test_scores[i] if multiclass else [m.test_scores[i]])]
        writer.writerow(row)
    return buffer.getvalue()


def _plot_multiclass(out: Path, reports: list[Any], members: list[FinalMember], data: Any) -> None:
    """One-vs-rest ROC curves per class of the best model, and each report's K x K confusion matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    names, labels = list(data.class_names), data.test.labels
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for k, name in enumerate(names):
        if 0 < (labels == k).sum() < len(labels):
            fpr, tpr, _ = roc_curve(labels == k, members[0].test_scores[:, k])
            ax.plot(fpr, tpr, label=f"{name} (AUC {reports[0].per_class[name]['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity",
           title=f"ROC per class, one vs rest (best model)\nmacro AUC {reports[0].metrics['roc_auc']:.3f}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc_curve.png", dpi=110)
    plt.close(fig)

    side = max(4.0, 0.55 * len(names) + 2)
    fig, axes = plt.subplots(1, len(reports), figsize=(side * len(reports), side), squeeze=False)
    for ax, report in zip(axes[0], reports):
        matrix = np.array(report.confusion)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=9,
                    color="white" if v > matrix.max() / 2 else "black")
        ticks = range(len(names))
        ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title=report.name)
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    plt.close(fig)


def _plot_roc_and_confusion(out: Path, reports: list[Any], members: list[FinalMember], data: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    scores = [members[0].test_scores]
    if len(reports) > 1:
        scores.append(np.mean([m.test_scores for m in members], axis=0))
    fig, ax = plt.subplots(figsize=(5, 5))
    for report, s in zip(reports, scores):
        fpr, tpr, _ = roc_curve(data.test.labels, s)
        ax.plot(fpr, tpr, label=f"{report.name} (AUC {report.metrics['roc_auc']:.3f})")
        c = report.confusion
        ax.plot(c["fp"] / max(c["fp"] + c["tn"], 1), c["tp"] / max(c["tp"] + c["fn"], 1), "o",
                label=f"{report.name}: threshold {report.threshold:.2f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC, held-out test split")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc_curve.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(reports), figsize=(4 * len(reports), 4), squeeze=False)
    for ax, report in zip(axes[0], reports):
        c = report.confusion
        matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=12)
        names = [data.class_names[0], data.class_names[-1]]
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=names, yticklabels=names, xlabel="predicted",
               ylabel="true", title=report.name)
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=120)
    plt.close(fig)


def _write_report_html(out: Path, name: str, run: Any = None) -> None:
    """``report.html`` from ``report.json`` (so the page shows exactly its numbers) and the plots.

    A convenience view of files already written: a failure is logged, never allowed to lose the run.
    """
    from medtune.search.results.report_html import write_report_html

    try:
        summary = json.loads((out / "report.json").read_text())
        write_report_html(out, summary, f"Final test report: {name}", run)
    except Exception as exc:
        log.warning("could not write report.html: %s", exc)


def _gradcam_figure(member: FinalMember, threshold: float, data: Any, path: Path, per_group: int) -> None:
    """Heat maps over a fixed sample of test images: both classes, correct and wrong predictions.

    Each panel overlays the Grad-CAM of the positive-class score (``medtune.trainables.gradcam``: the
    deepest stage with at least 7x7 cells, bilinear to the image) on the grey image, on one 0..1
    colour scale; the caption gives the true class, whether the prediction at ``threshold`` was
    right, and the score; a note under the panels names the feature map, so a coarse map is never
    mistaken for a sharp one.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from PIL import Image

    from medtune.trainables.config import TrialConfig
    from medtune.trainables.data import SplitArrays
    from medtune.trainables.gradcam import gradcam_with_layer, pick_examples
    from medtune.trainables.train import make_batches

    if member.test_scores.ndim == 2:
        _multiclass_gradcam_figure(member, data, path, per_group)
        return
    chosen = pick_examples(member.test_scores, data.test.labels, threshold, per_group, tuple(data.class_names))
    if not chosen:
        return
    names = tuple(data.class_names)
    idx = np.array([i for i, _ in chosen])
    cfg = TrialConfig.from_dict({**member.config, "channels_last": False})
    sample = SplitArrays(images=np.asarray(data.test.images[idx]), labels=data.test.labels[idx])
    device = next(member.model.parameters()).device
    images, _ = next(iter(make_batches(cfg, sample, train=False, device=device)))
    maps, layer = gradcam_with_layer(member.model, images, target_class=len(names) - 1)
    cols = min(4, len(chosen))
    rows = (len(chosen) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.1, 3.0 * rows + 1.0), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    cmap, norm = "jet", Normalize(0.0, 1.0)
    for ax, i, heat in zip(axes.flat, idx, maps):
        raw = np.asarray(data.test.images[i])
        gray = raw if raw.ndim == 2 else raw.mean(axis=-1)
        heat_resized = torch.nn.functional.interpolate(torch.from_numpy(heat)[None, None], size=gray.shape,
                                                       mode="bilinear", align_corners=False)[0, 0].numpy()
        ax.imshow(gray, cmap="gray", interpolation="bilinear")
        ax.imshow(heat_resized, cmap=cmap, norm=norm, alpha=0.45, interpolation="bilinear")
        label, score = int(data.test.labels[i]), float(member.test_scores[i])
        correct = int(score >= threshold) == label
        flat = " (map all 0)" if heat.max() <= 0 else ""  # no positive evidence at this stage
        ax.set_title(f"true: {names[-1] if label else names[0]}\n"
                     f"predicted {'correct' if correct else 'wrong'}, score {score:.2f}{flat}",
                     fontsize=11, color="black" if correct else "firebrick")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8, label="Grad-CAM (relative)",
                 ticks=[0, 0.25, 0.5, 0.75, 1])
    fig.suptitle(f"Grad-CAM for the {names[-1]!r} score, the positive class (test images)", fontsize=13)
    fig.supxlabel(f"score = P({names[-1]}), predicted {names[-1]} at score >= {threshold:.2f}; each map scaled "
                  f"to its own maximum\nfeature map: {layer.describe()}, bilinear to the image", fontsize=9)
    # A 256-colour palette (dithered, so the smooth maps do not band) keeps the figure near 200 KB
    # instead of 600: report.html embeds it.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    rgb = Image.open(buffer).convert("RGB")
    palette = rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def _multiclass_gradcam_figure(member: FinalMember, data: Any, path: Path, per_class: int) -> None:
    """Multi-class: per true class, its most confident right prediction and its most confident
    wrong one, each with the Grad-CAM of the class the model predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from medtune.trainables.config import TrialConfig
    from medtune.trainables.data import SplitArrays
    from medtune.trainables.gradcam import gradcam_with_layer
    from medtune.trainables.train import make_batches

    probs, labels, names = member.test_scores, data.test.labels, tuple(data.class_names)
    predicted = probs.argmax(axis=1)
    chosen: list[int] = []
    for k in range(len(names)):
        for correct in (True, False):
            idx = np.flatnonzero((labels == k) & ((predicted == k) == correct))
            chosen += idx[np.argsort(-probs[idx].max(axis=1), kind="stable")][:max(1, per_class // 2)].tolist()
    chosen = chosen[:16]
    if not chosen:
        return
    cfg = TrialConfig.from_dict({**member.config, "channels_last": False})
    device = next(member.model.parameters()).device
    maps: dict[int, np.ndarray] = {}
    layer = None
    for target in sorted({int(predicted[i]) for i in chosen}):  # one pass per predicted class
        rows = [i for i in chosen if predicted[i] == target]
        sample = SplitArrays(images=np.asarray(data.test.images[rows]), labels=labels[rows])
        images, _ = next(iter(make_batches(cfg, sample, train=False, device=device)))
        heat, layer = gradcam_with_layer(member.model, images, target_class=target)
        maps.update(zip(rows, heat))
    cols = min(4, len(chosen))
    grid = (len(chosen) + cols - 1) // cols
    fig, axes = plt.subplots(grid, cols, figsize=(2.6 * cols + 1.1, 3.0 * grid + 1.0), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    norm = Normalize(0.0, 1.0)
    for ax, i in zip(axes.flat, chosen):
        raw = np.asarray(data.test.images[i])
        gray = raw if raw.ndim == 2 else raw.mean(axis=-1)
        heat = torch.nn.functional.interpolate(torch.from_numpy(maps[i])[None, None], size=gray.shape,
                                               mode="bilinear", align_corners=False)[0, 0].numpy()
        ax.imshow(gray, cmap="gray", interpolation="bilinear")
        ax.imshow(heat, cmap="jet", norm=norm, alpha=0.45, interpolation="bilinear")
        right = predicted[i] == labels[i]
        ax.set_title(f"true: {names[labels[i]]}\npredicted: {names[predicted[i]]} ({probs[i, predicted[i]]:.2f})",
                     fontsize=10, color="black" if right else "firebrick")
    fig.colorbar(ScalarMappable(norm=norm, cmap="jet"), ax=axes, shrink=0.8, label="Grad-CAM (relative)")
    fig.suptitle("Grad-CAM for each image's predicted class (test images)", fontsize=13)
    fig.supxlabel(f"each map scaled to its own maximum; feature map: {layer.describe()}", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _log_to_mlflow(spec: SweepSpec, members: list[FinalMember], reports: list[Any], data: Any, out: Path,
                   n_epochs: int, register: str | None) -> tuple[str, str | None]:
    from mlflow.entities import Metric, Param

    from medtune.search.results.report_html import mlflow_run_ref
    from medtune.search.tracking.run_notes import link_final_and_sweep
    from medtune.search.tracking.run_tags import run_tags
    from medtune.search.tracking.client import ensure_experiment, mlflow_client, resolved_tracking_uri
    from medtune.search.tracking.models import log_pt2_model
    from medtune.search.tracking.trial_runs import trial_params

    tracking_uri = resolved_tracking_uri(spec.mlflow.tracking_uri)
    client = mlflow_client(tracking_uri)
    experiment = spec.provenance.get("experiment") or spec.experiment_name
    experiment_id = ensure_experiment(client, experiment, spec.mlflow.artifact_location)
    tags = {"medtune.kind": "final", "medtune.epochs": str(n_epochs), "medtune.ensemble": str(len(members)),
            "medtune.threshold_rule": reports[0].threshold_rule,
            "medtune.cv_folds": str(spec.search.cv if isinstance(spec.search.cv, int) else 0)}
    for key in ("sweep", "parent_run_id", "trial_id", "space_hash"):
        if spec.provenance.get(key) is not None:
            tags[f"medtune.sweep_{key}" if key != "sweep" else "medtune.sweep"] = str(spec.provenance[key])
    run = client.create_run(experiment_id, run_name=final_run_name(spec, members[0].config, len(members)),
                            tags=run_tags(tags))
    run_id = run.info.run_id
    _write_report_html(out, spec.name, mlflow_run_ref(tracking_uri, experiment_id, run_id))  # now with the run link
    now = int(time.time() * 1000)
    metrics = []
    for report in reports:
        prefix = "test_" if report is reports[0] else "ensemble_test_"
        for name, value in report.metrics.items():
            metrics.append(Metric(f"{prefix}{name}", float(value), now, 0))
            low, high = report.intervals[name]
            metrics += [Metric(f"{prefix}{name}_ci_low", float(low), now, 0),
                        Metric(f"{prefix}{name}_ci_high", float(high), now, 0)]
        if math.isfinite(report.threshold):
            metrics.append(Metric(f"{prefix}threshold", float(report.threshold), now, 0))
        for class_name, values in getattr(report, "per_class", {}).items():  # multi-class: per class, one vs rest
            for key in ("sensitivity", "specificity", "roc_auc"):
                if math.isfinite(values[key]):
                    metrics.append(Metric(f"{prefix}{key}_{metric_safe(class_name)}", float(values[key]), now, 0))
    params = [Param(k, v) for k, v in trial_params(members[0].config).items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    client.log_artifacts(run_id, str(out), artifact_path="report")

    model_uri = None
    try:
        from medtune.trainables.config import TrialConfig

        cfg = TrialConfig.from_dict(members[0].config)
        model_uri = log_pt2_model(tracking_uri, experiment_id, run_id, members[0].model, cfg, data.test, register,
                                  name=f"final-{cfg.architecture}", params=trial_params(members[0].config),
                                  metrics={f"test_{k}": v for k, v in reports[0].metrics.items()},
                                  alias=CHAMPION_ALIAS).uri
    except Exception as exc:  # the report is logged already; a model-format problem must not lose it
        log.warning("could not log the final model as an MLflow model: %s", exc)
    try:
        link_final_and_sweep(client, spec, experiment_id, run_id, reports[0])
    except Exception as exc:  # the links are a convenience; the run and its report are logged
        log.warning("could not link the final run and its sweep in MLflow: %s", exc)
    client.set_terminated(run_id, status="FINISHED")
    return run_id, model_uri


def metric_safe(name: str) -> str:
    """A class name as part of an MLflow metric key (letters, digits, _ - . / and spaces only)."""
    return re.sub(r"[^\w\-. /]", "_", name).strip() or "class"


def final_run_name(spec: SweepSpec, config: dict[str, Any], members: int) -> str:
    """``final <sweep> <architecture> fd<frozen depth>`` (``ensemble of K`` when there are K members):
    what the runs table shows, so the final run is recognisable without opening it."""
    sweep = spec.provenance.get("sweep") or spec.name
    name = f"final {sweep} {config.get('architecture')} fd{config.get('frozen_depth')}"
    return name + (f" ensemble of {members}" if members > 1 else "")
