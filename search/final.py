"""``medtune final``: train the chosen configuration once more and evaluate it once on test.

The sweep never looks at the test split; this is the one place that does. The configuration
(``best_config.yaml`` from ``medtune sweep``/``medtune best``) is trained with the same training
function the trials use, on train plus half of val (stratified, seeded); the other half of val is
held out to choose the decision threshold. Then the test split is scored once: the report
(``trainables.report``) with 95% bootstrap intervals, the ROC curve and confusion matrix as
images, the saved predictions, and the model, all logged to one MLflow run tagged with the sweep
it came from. ``--ensemble K`` retrains the top-K configurations of the sweep and averages their
probabilities, reported side by side with the single best model.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.spec import SpecError, SweepSpec

log = logging.getLogger(__name__)

#: Share of val held out of final training to choose the threshold on.
CALIBRATION_FRACTION = 0.5


@dataclass
class FinalMember:
    """One trained model of the final run: its config and its val/test probabilities."""

    config: dict[str, Any]
    model: Any
    val_scores: np.ndarray
    test_scores: np.ndarray


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


def final_splits(splits: Any, calibration_fraction: float, seed: int) -> Any:
    """Train on train + (1 - fraction) of val; keep ``fraction`` of val to pick the threshold."""
    from trainables.data import DatasetSplits, SplitArrays
    from trainables.data.splits import carve_val, take

    keep_idx, calibration_idx = carve_val(splits.val.labels, calibration_fraction, seed, len(splits.class_names))
    train = SplitArrays(images=np.concatenate([np.asarray(splits.train.images), np.asarray(splits.val.images[keep_idx])]),
                        labels=np.concatenate([splits.train.labels, splits.val.labels[keep_idx]]))
    calibration = take(splits.val.images, splits.val.labels, calibration_idx)
    return DatasetSplits(train=train, val=calibration, test=splits.test, class_names=splits.class_names,
                         fingerprint=splits.fingerprint)


def member_configs(spec: SweepSpec, ensemble: int) -> list[dict[str, Any]]:
    """The best configuration, then the next ones the sweep ranked (``provenance.top_configs``)."""
    from search.tuner import trial_fixed_values

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


def train_member(config: dict[str, Any], data: Any, epochs: int, workdir: Path) -> FinalMember:
    from trainables.config import TrialConfig
    from trainables.evaluate import predict_split
    from trainables.reporting import LocalReporter
    from trainables.train import run_training

    cfg = TrialConfig.from_dict({**config, "epochs": epochs})
    reporter = LocalReporter(workdir, metric="val_auc", mode="max")
    outcome = run_training(cfg, reporter, data=data)
    val_probs, _ = predict_split(outcome.model, cfg, data.val)
    test_probs, _ = predict_split(outcome.model, cfg, data.test)
    return FinalMember(cfg.to_dict(), outcome.model, val_probs[:, -1], test_probs[:, -1])


def final_epochs(spec: SweepSpec, mode: str) -> int:
    if mode == "best":
        best_epoch = spec.provenance.get("best_epoch")
        if not best_epoch:
            raise SpecError(spec.source, [("provenance.best_epoch", "--epochs best needs the best trial's epoch; "
                                           "this file has none (use --epochs budget)")])
        return int(best_epoch)
    return spec.search.scheduler.max_t


def run_final(spec: SweepSpec, *, epochs: str = "budget", ensemble: int = 1, register: str | None = None,
              out_dir: str | Path | None = None, calibration_fraction: float = CALIBRATION_FRACTION,
              gradcam_samples: int = 8) -> FinalOutcome:
    """Train, evaluate once on test, write the report, log it all to MLflow."""
    from search.sweep import check_data
    from trainables.data import load_splits
    from trainables.config import TrialConfig
    from trainables.report import build_report, report_markdown
    from trainables.train import data_config

    if spec.space:
        raise SpecError(spec.source, [("space", "final trains one configuration: expected an empty space with every "
                                       "value under fixed (a best_config.yaml)")])
    check_data(spec)
    configs = member_configs(spec, ensemble)
    n_epochs = final_epochs(spec, epochs)
    out = Path(out_dir or tempfile.mkdtemp(prefix="medtune-final-"))
    out.mkdir(parents=True, exist_ok=True)

    splits = load_splits(data_config(TrialConfig.from_dict({k: v for k, v in configs[0].items()
                                                           if k.startswith("data_") or k in ("image_size", "cache_dir")})))
    data = final_splits(splits, calibration_fraction, seed=spec.data.split_seed)
    started = time.perf_counter()
    members = [train_member(config, data, n_epochs, out / f"member{i}") for i, config in enumerate(configs)]
    train_seconds = time.perf_counter() - started

    val_labels, test_labels = data.val.labels, data.test.labels
    reports = [build_report("best model", members[0].val_scores, val_labels, members[0].test_scores, test_labels,
                            data.class_names)]
    if len(members) > 1:
        val_mean = np.mean([m.val_scores for m in members], axis=0)
        test_mean = np.mean([m.test_scores for m in members], axis=0)
        reports.append(build_report(f"ensemble of {len(members)}", val_mean, val_labels, test_mean, test_labels,
                                    data.class_names))
    _write_artifacts(out, spec, members, reports, data, n_epochs, train_seconds)
    try:
        _gradcam_figure(members[0], reports[0].threshold, data, out / "gradcam.png", per_group=max(1, gradcam_samples // 4))
    except Exception as exc:  # interpretability must not lose a finished final run
        log.warning("Grad-CAM failed: %s", exc)
    print(report_markdown(reports, f"Final test report: {spec.name}"), flush=True)
    run_id = model_uri = None
    if spec.mlflow.enabled:
        run_id, model_uri = _log_to_mlflow(spec, members, reports, data, out, n_epochs, register)
    return FinalOutcome(run_id, reports, out, model_uri, epochs=n_epochs, train_seconds=train_seconds,
                        member_configs=[m.config for m in members])


def _write_artifacts(out: Path, spec: SweepSpec, members: list[FinalMember], reports: list[Any], data: Any,
                     n_epochs: int, train_seconds: float) -> None:
    from trainables.report import report_markdown

    summary = {
        "sweep": spec.provenance.get("sweep"), "trial_id": spec.provenance.get("trial_id"),
        "epochs": n_epochs, "train_images": int(len(data.train.labels)), "calibration_images": int(len(data.val.labels)),
        "train_seconds": train_seconds, "members": [m.config for m in members],
        "reports": [r.to_dict() for r in reports],
    }
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "report.md").write_text(report_markdown(reports, f"Final test report: {spec.name}"))
    header = "label,best_model_score" + ("".join(f",member{i}_score" for i in range(1, len(members))))
    rows = [header]
    for i, label in enumerate(data.test.labels):
        scores = [float(members[0].test_scores[i])] + [float(m.test_scores[i]) for m in members[1:]]
        rows.append(f"{int(label)}," + ",".join(repr(v) for v in scores))
    (out / "test_predictions.csv").write_text("\n".join(rows) + "\n")
    _plot_roc_and_confusion(out, reports, members, data)


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


def _gradcam_figure(member: FinalMember, threshold: float, data: Any, path: Path, per_group: int) -> None:
    """Heat maps over a fixed sample of test images: both classes, correct and wrong predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from trainables.config import TrialConfig
    from trainables.data import SplitArrays
    from trainables.gradcam import gradcam, pick_examples
    from trainables.train import make_batches

    chosen = pick_examples(member.test_scores, data.test.labels, threshold, per_group)
    if not chosen:
        return
    idx = np.array([i for i, _ in chosen])
    cfg = TrialConfig.from_dict({**member.config, "channels_last": False})
    sample = SplitArrays(images=np.asarray(data.test.images[idx]), labels=data.test.labels[idx])
    device = next(member.model.parameters()).device
    images, _ = next(iter(make_batches(cfg, sample, train=False, device=device)))
    maps = gradcam(member.model, images, target_class=len(data.class_names) - 1)
    cols = min(4, len(chosen))
    rows = (len(chosen) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, caption), heat, k in zip(axes.flat, chosen, maps, range(len(chosen))):
        raw = np.asarray(data.test.images[i])
        gray = raw if raw.ndim == 2 else raw.mean(axis=-1)
        heat_resized = torch.nn.functional.interpolate(torch.from_numpy(heat)[None, None], size=gray.shape,
                                                       mode="bilinear", align_corners=False)[0, 0].numpy()
        ax.imshow(gray, cmap="gray")
        ax.imshow(heat_resized, cmap="jet", alpha=0.4)
        ax.set_title(f"{caption}\nscore {member.test_scores[i]:.2f}", fontsize=8)
    fig.suptitle("Grad-CAM for the PNEUMONIA score (test images)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _log_to_mlflow(spec: SweepSpec, members: list[FinalMember], reports: list[Any], data: Any, out: Path,
                   n_epochs: int, register: str | None) -> tuple[str, str | None]:
    import mlflow
    from mlflow.entities import Metric, Param

    from search.tracking import ensure_experiment, log_pt2_model, mlflow_client, resolved_tracking_uri, trial_params

    tracking_uri = resolved_tracking_uri(spec.mlflow.tracking_uri)
    client = mlflow_client(tracking_uri)
    experiment = spec.provenance.get("experiment") or spec.experiment_name
    experiment_id = ensure_experiment(client, experiment, spec.mlflow.artifact_location)
    tags = {"medtune.kind": "final", "medtune.epochs": str(n_epochs), "medtune.ensemble": str(len(members))}
    for key in ("sweep", "parent_run_id", "trial_id", "space_hash"):
        if spec.provenance.get(key) is not None:
            tags[f"medtune.sweep_{key}" if key != "sweep" else "medtune.sweep"] = str(spec.provenance[key])
    run = client.create_run(experiment_id, run_name=f"final-{spec.provenance.get('trial_id', spec.name)}", tags=tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metrics = []
    for report in reports:
        prefix = "test_" if report is reports[0] else "ensemble_test_"
        for name, value in report.metrics.items():
            metrics.append(Metric(f"{prefix}{name}", float(value), now, 0))
            low, high = report.intervals[name]
            metrics += [Metric(f"{prefix}{name}_ci_low", float(low), now, 0),
                        Metric(f"{prefix}{name}_ci_high", float(high), now, 0)]
        metrics.append(Metric(f"{prefix}threshold", float(report.threshold), now, 0))
    params = [Param(k, v) for k, v in trial_params(members[0].config).items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    client.log_artifacts(run_id, str(out), artifact_path="report")

    model_uri = None
    try:
        from trainables.config import TrialConfig

        model_uri = log_pt2_model(tracking_uri, experiment_id, run_id, members[0].model,
                                  TrialConfig.from_dict(members[0].config), data.test, register)
    except Exception as exc:  # the report is logged already; a model-format problem must not lose it
        log.warning("could not log the final model as an MLflow model: %s", exc)
    client.set_terminated(run_id, status="FINISHED")
    return run_id, model_uri
