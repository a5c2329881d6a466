"""The files of ``medtune final``'s output folder, which its MLflow run holds under ``report/``.

``report.json`` is the machine-readable record and the source of every number the other files
show; ``report.md`` (readable in MLflow's artifact view), ``test_predictions.csv`` (every test
image's label and scores, calibrated and raw, so each number can be recomputed), the figures
(``final_figures``, ``calibration``) and ``report.html`` (``report_html``, rendered from ``report.json``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medtune.search.results.final_members import FinalMember
from medtune.search.results.final_reports import report_markdown
from medtune.search.spec.sweep_spec import SweepSpec

if TYPE_CHECKING:
    from medtune.search.results.report_html import MlflowRunRef

log = logging.getLogger(__name__)


def report_title(spec: SweepSpec) -> str:
    return f"Final test report: {spec.name}"


def write_artifacts(out: Path, spec: SweepSpec, members: list[FinalMember], reports: list[Any], data: Any,
                    n_epochs: int, train_seconds: float, threshold_source: str) -> None:
    """``report.json``, ``report.md``, ``test_predictions.csv`` and the figures (Grad-CAM aside)."""
    from medtune.search.results.calibration import write_calibration
    from medtune.search.results.final_figures import plot_binary, plot_multiclass, plot_multilabel

    multilabel = bool(getattr(data, "multilabel", False))
    multiclass = members[0].test_scores.ndim == 2 and not multilabel
    summary = {
        "sweep": spec.provenance.get("sweep"), "trial_id": spec.provenance.get("trial_id"),
        "epochs": n_epochs, "budget_unit": spec.search.scheduler.unit, "cv_folds": spec.search.cv,
        "train_images": int(len(data.train.labels)),
        # multi-class: no threshold, so no image chose one
        "calibration_images": None if multiclass else int(len(members[0].val_labels)),
        "threshold_source": threshold_source,
        "train_seconds": train_seconds, "members": [m.config for m in members],
        "reports": [r.to_dict() for r in reports],
        "class_names": list(data.class_names),
    }
    if getattr(data, "colour", None) is not None:  # the data's mode (trainables/data/colour.py)
        summary["image_mode"] = "colour (RGB)" if data.colour else "grey"
    if multilabel:
        summary["task"] = "multilabel"
    elif not multiclass:  # reliability diagrams of the positive class's probability, before and after calibration
        best = members[0]
        calibration = getattr(best, "calibration", None)
        summary["calibration"] = write_calibration(out, _raw_test_scores(best), best.test_scores, data.test.labels,
                                                   None if calibration is None else calibration.to_dict())
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=str))
    markdown = report_markdown(reports, report_title(spec))
    (out / "report.md").write_text(f"{markdown}\nThreshold chosen on {threshold_source}.\n")
    (out / "test_predictions.csv").write_text(predictions_csv(members, data))
    if multilabel:
        plot_multilabel(out, reports, members, data)
    elif multiclass:
        plot_multiclass(out, reports, members, data)
    else:
        plot_binary(out, reports, members, data)


def _raw_test_scores(member: Any) -> Any:
    """A member's uncalibrated test scores (its test scores when it was never calibrated)."""
    raw = getattr(member, "raw_test_scores", None)
    return member.test_scores if raw is None else raw


def predictions_csv(members: list[FinalMember], data: Any) -> str:
    """One row per test image: its label, then each member's scores. Two classes: the calibrated
    positive-class probability the report decides on (``<member>_score``) and the model's own,
    uncalibrated one (``<member>_raw_score``); more: one probability column per class; multi-label
    findings: one 0/1 label column per finding (``label_<finding>``), then each member's probability
    of each finding."""
    multiclass = members[0].test_scores.ndim == 2
    findings = np.ndim(data.test.labels) == 2
    header = [f"label_{name}" for name in data.class_names] if findings else ["label"]
    for i in range(len(members)):
        prefix = "best_model" if i == 0 else f"member{i}"
        header += [f"{prefix}_{name}" for name in data.class_names] if multiclass else [f"{prefix}_score",
                                                                                       f"{prefix}_raw_score"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    raws = [_raw_test_scores(m) for m in members]
    for i, label in enumerate(data.test.labels):
        row: list[Any] = [int(v) for v in label] if findings else [int(label)]
        for m, raw in zip(members, raws):
            row += [repr(float(v)) for v in (m.test_scores[i] if multiclass else [m.test_scores[i], raw[i]])]
        writer.writerow(row)
    return buffer.getvalue()


def write_report_page(out: Path, title: str, run: "MlflowRunRef | None" = None) -> None:
    """``report.html`` from ``report.json`` (so the page shows exactly its numbers) and the plots.

    A convenience view of files already written: a failure is logged, never allowed to lose the run.
    """
    from medtune.search.results.report_html import write_report_html

    try:
        summary = json.loads((out / "report.json").read_text())
        write_report_html(out, summary, title, run)
    except Exception as exc:
        log.warning("could not write report.html: %s", exc)
