"""``medtune final``: train the chosen configuration once more and evaluate it once on test.

The sweep never looks at the test split; this is the one place that does. ``run_final`` is the
list of steps, each owned by a module of its own:

1. check every input that can be checked before anything trains (here);
2. train the configuration, or the sweep's top K for ``--ensemble K`` (``final_training``: a
   two-class model trains on train + half of val and the other half chooses the threshold; after a
   cross-validated sweep, out-of-fold predictions choose it and the model trains on all of train +
   val; with more than two classes there is no threshold and the model trains on all of train + val);
3. calibrate each two-class member's scores on its held-out scores (``final_calibration``), so the
   operating point (``--operating-point``) is chosen on, and applied to, calibrated probabilities;
4. score the test split once: the reports with 95% bootstrap intervals (``final_reports``);
5. write the output folder: ``report.json``, ``report.md``, predictions, figures, Grad-CAM,
   ``report.html`` and ``model/``, the best model as a bundle that ``medtune predict`` reads
   (``final_artifacts``, ``final_figures``, ``final_gradcam``, ``report_html``, ``final_bundle``);
6. log it all to one MLflow run linked to its sweep (``medtune.search.tracking.final_run``), the
   bundle as an MLflow model that takes raw images.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from medtune.search.results.final_artifacts import report_title, write_artifacts, write_report_page
from medtune.search.results.final_bundle import MODEL_FOLDER, write_final_bundle
from medtune.search.results.final_calibration import calibrated_training
from medtune.search.results.final_outcome import FinalOutcome
from medtune.search.results.final_reports import (
    build_reports,
    check_operating_point,
    check_threshold_applies,
    report_markdown,
)
from medtune.search.run.final_training import (
    CALIBRATION_FRACTION,
    FinalMember,
    FinalTraining,
    best_trial_epoch,
    final_budget,
    member_configs,
    train_members,
    trial_train_images,
)
from medtune.search.spec.sweep_spec import SpecError, SweepSpec

__all__ = ["CALIBRATION_FRACTION", "FinalMember", "FinalOutcome", "final_budget", "run_final"]

log = logging.getLogger(__name__)


def run_final(spec: SweepSpec, *, epochs: str = "budget", ensemble: int = 1, register: str | None = None,
              out_dir: str | Path | None = None, calibration_fraction: float = CALIBRATION_FRACTION,
              gradcam_samples: int = 8, operating_point: str = "auto", threshold: str | None = None) -> FinalOutcome:
    """Train, evaluate once on test, write the report, log it all to MLflow.

    ``operating_point`` is the decision rule (``medtune.trainables.operating_point``; ``auto`` is its
    default); ``threshold`` is its old name, still accepted."""
    from medtune.search.run.preflight import resolved_spec

    rule = _one_rule(operating_point, threshold)
    _check_before_reading_data(spec, out_dir, rule, epochs)
    spec, _ = resolved_spec(spec)
    configs = member_configs(spec, ensemble)
    out = Path(out_dir or tempfile.mkdtemp(prefix="medtune-final-"))
    out.mkdir(parents=True, exist_ok=True)
    splits = _load_splits(configs[0])
    check_threshold_applies(rule, tuple(splits.class_names), spec.source, multilabel=splits.multilabel)

    budget = final_budget(spec, epochs, configs[0], trial_train_images(spec, splits))
    trained = calibrated_training(train_members(spec, configs, splits, budget, out, calibration_fraction))
    reports, threshold_source = build_reports(trained.members, trained.data, rule, trained.threshold_source,
                                              ordinal=spec.data.task == "ordinal")
    n_epochs = trained.members[0].epochs

    write_artifacts(out, spec, trained.members, reports, trained.data, n_epochs, trained.seconds, threshold_source)
    write_final_bundle(out, trained.members[0], reports[0], trained.data, spec, threshold_source)
    _draw_gradcam(trained, reports, out, gradcam_samples)
    write_report_page(out, report_title(spec))  # after Grad-CAM, whose figure it embeds
    print(report_markdown(reports, report_title(spec)), flush=True)

    outcome = FinalOutcome(None, reports, out, None, epochs=n_epochs, train_seconds=trained.seconds,
                           member_configs=[m.config for m in trained.members])
    if spec.mlflow.enabled:
        _log_to_mlflow(spec, trained, reports, out, register, outcome)
    return outcome


def _one_rule(operating_point: str, threshold: str | None) -> str:
    """The rule, given as ``operating_point`` or by its old name ``threshold`` (not two different ones)."""
    if threshold is None or str(threshold) in ("auto", str(operating_point)):  # "auto": its default, not a choice
        return operating_point
    if str(operating_point) == "auto":
        return threshold
    raise ValueError(f"operating_point={operating_point!r} and threshold={threshold!r}: threshold is the old name of "
                     "operating_point; give one")


def _check_before_reading_data(spec: SweepSpec, out_dir: str | Path | None, rule: str, epochs: str) -> None:
    """Bad input found in seconds, before data is read or anything trains."""
    if spec.space:
        raise SpecError(spec.source, [("space", "final trains one configuration: expected an empty space with every "
                                       "value under fixed (a best_config.yaml)")])
    if out_dir is not None:
        from medtune.search.run.preflight import check_output_path

        check_output_path(out_dir, "--out", spec.source, folder=True)
    if spec.mlflow.enabled:  # found now, not after the training it would fail to log
        from medtune.search.tracking.client import check_tracking_server

        check_tracking_server(spec.mlflow.tracking_uri, spec.source)
    check_operating_point(rule, spec.source)
    if epochs == "best":
        best_trial_epoch(spec)


def _load_splits(config: dict[str, Any]) -> Any:
    """The data set the configuration names (its ``data_*`` keys, image size and cache)."""
    from medtune.trainables.data import DataConfig, load_splits

    return load_splits(DataConfig.from_trial_values(config))


def _draw_gradcam(trained: FinalTraining, reports: list[Any], out: Path, samples: int) -> None:
    """``gradcam.png`` of the best model; interpretability must not lose a finished final run."""
    from medtune.search.results.final_gradcam import gradcam_figure

    try:
        offsets = reports[0].log_offsets() if hasattr(reports[0], "log_offsets") else None  # more than two classes
        gradcam_figure(trained.members[0], reports[0].threshold, trained.data, out / "gradcam.png",
                       per_group=max(1, samples // 4), offsets=offsets,
                       thresholds=getattr(reports[0], "thresholds", None))  # multi-label: one per finding
    except Exception as exc:
        log.warning("Grad-CAM failed: %s", exc)


def _log_to_mlflow(spec: SweepSpec, trained: FinalTraining, reports: list[Any], out: Path, register: str | None,
                   outcome: FinalOutcome) -> None:
    """One MLflow run with the report, the model and the links to its sweep; fills ``outcome``'s
    MLflow fields. ``report.html`` is written again first, now with the run's link."""
    from medtune.search.results.report_html import mlflow_run_ref
    from medtune.search.tracking.final_run import FinalRun, model_metadata

    best = trained.members[0]
    run = FinalRun.start(spec, best.config, len(trained.members), outcome.epochs, reports[0].threshold_rule)
    write_report_page(out, report_title(spec), mlflow_run_ref(run.tracking_uri, run.experiment_id, run.run_id))
    run.log_report(reports, best.config, out, skip=(MODEL_FOLDER,))  # the bundle goes in once: as the model
    outcome.model_uri = run.log_model(out / MODEL_FOLDER, best.config, trained.data.test.images[:2], register,
                                      reports[0].metrics,
                                      metadata=model_metadata(reports[0], tuple(trained.data.class_names)))
    run.link_sweep(spec, reports[0])
    outcome.sweep_link = run.sweep_link(spec)
    run.finish()
    outcome.run_id, outcome.tracking_uri, outcome.experiment_id = run.run_id, run.tracking_uri, run.experiment_id
