"""``report.html``: the final run's test report as one self-contained page.

``report.md`` reads well in MLflow's artifact view but leaves the plots as separate files; a
clinician or reviewer who is sent the report needs one file that opens anywhere, offline, and shows
everything: the metrics with their intervals, the operating point (its rule, the threshold on the
calibrated and on the raw scale, the calibration map and the ECE before and after it), the ROC
curve, the confusion matrix, the Grad-CAM sample, how well the scores are calibrated (``calibration``), the
configuration and where the MLflow run is. So the page carries its images as ``data:`` URIs and its
CSS inline, loads nothing (a Content-Security-Policy forbids it), and escapes every piece of text
(``_html``), since configuration values and names come from user-written space files.

The page is rendered from the dict ``report.json`` holds, so every number it shows is the one the
machine-readable report records (each value cell carries the raw number in ``data-value``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medtune.search.results._html import (
    CSP,
    CSS,
    count_cell,
    escape,
    format_number,
    header,
    image_tag,
    num_cell,
    row,
    table,
)

#: The plots ``medtune final`` writes, in the order the page shows them, with their captions.
FIGURES = (
    ("roc_curve.png", "ROC curve on the test split, with the chosen operating point"),
    ("confusion_matrix.png", "Confusion matrix at the chosen threshold (rows: true class, columns: predicted)"),
    ("calibration.png", "Reliability diagram of the best model's test scores, before and after calibration"),
    ("gradcam.png", "Grad-CAM heat maps over a fixed sample of test images"),
)


@dataclass(frozen=True)
class MlflowRunRef:
    """Where the final run lives in MLflow: a link when the store is a server, else how to open it.

    A file or database store has no web address of its own; the page then names the run and the
    ``mlflow ui`` command that serves the store. ``tracking_uri`` is stored without user info.
    """

    run_id: str
    experiment_id: str
    tracking_uri: str
    url: str | None = None

    @property
    def ui_command(self) -> str:
        return f"mlflow ui --backend-store-uri {self.tracking_uri}"


def mlflow_run_ref(tracking_uri: str, experiment_id: str, run_id: str) -> MlflowRunRef:
    """The run's reference for the page; the URI's user info (a password) never reaches the file."""
    from medtune.search.credentials import redact_uri

    uri = redact_uri(tracking_uri)
    url = None
    if urlsplit(uri).scheme in ("http", "https"):
        url = f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return MlflowRunRef(run_id=run_id, experiment_id=experiment_id, tracking_uri=uri, url=url)


# --- one report's section --------------------------------------------------------------------------


def _metrics_table(index: int, report: dict[str, Any]) -> str:
    rows = [header("metric", "value", "95% CI low", "95% CI high")]
    for name, entry in report["metrics"].items():
        low, high = entry["ci95"]
        rows.append(row(name, [num_cell(entry["value"], metric=f"{index}:{name}"),
                               num_cell(low, ci=f"{index}:{name}:low"), num_cell(high, ci=f"{index}:{name}:high")]))
    return table(rows)


def _before_after(values: Any) -> str:
    """``before -> after`` of an ECE or Brier pair (each number with its exact value kept)."""
    if not isinstance(values, dict) or not values:
        return "<td>n/a</td>"
    before, after = values.get("before"), values.get("after")
    return (f'<td><span class="num" data-value="{escape(repr(float(before)) if before is not None else "")}">'
            f"{escape(format_number(before))}</span> &rarr; "
            f'<span class="num" data-value="{escape(repr(float(after)) if after is not None else "")}">'
            f"{escape(format_number(after))}</span></td>")


def _operating_point(index: int, report: dict[str, Any]) -> str:
    from medtune.trainables.binary_report import describe_calibration, describe_threshold_rule

    rule = str(report.get("threshold_rule", ""))
    low, high = (report.get("tied_interval") or [None, None])[:2]
    described = escape(describe_threshold_rule(rule, report["threshold"]))
    rows = [row("threshold (calibrated score)", [num_cell(report["threshold"], threshold=str(index))]),
            row("rule", [f"<td><code>{escape(rule)}</code> ({described})</td>"])]
    if "raw_threshold" in report:
        raw = report.get("raw_threshold")
        rows.append(row("threshold on the uncalibrated score",
                        [num_cell(raw) if raw is not None and format_number(raw) != "n/a"
                         else "<td>n/a (each member has its own map)</td>"]))
    if "calibration_map" in report:
        rows.append(row("calibration map", [f"<td>{escape(describe_calibration(report['calibration_map']))}</td>"]))
        rows.append(row("ECE on test, before → after", [_before_after(report.get("ece"))]))
        rows.append(row("Brier on test, before → after", [_before_after(report.get("brier"))]))
    rows += [row("tied interval on validation", [
                 f"<td>({escape(format_number(low))}, {escape(format_number(high))}], "
                 f"logit width {escape(format_number(report.get('tied_logit_width')))}</td>"]),
             row("accuracy at 0.5 (uncalibrated)", [num_cell(report.get("accuracy_at_0.5"))])]
    return table(rows, "kv")


def _values_table(first: str, columns: tuple[str, ...], values: dict[str, dict[str, Any]]) -> str:
    """One row per key of ``values`` (a threshold rule, a class), one number cell per column."""
    return table([header(first, *columns)] + [row(name, [num_cell(v.get(c)) for c in columns])
                                              for name, v in values.items()])


def _by_rule_table(report: dict[str, Any]) -> str:
    by_rule = report.get("by_rule") or {}
    if not by_rule:
        return ""
    if report.get("kind") == "multiclass":  # accuracy and balanced accuracy (graded classes: kappa, grade error)
        return ("<h3>Each operating point (the probabilities and AUCs are the same)</h3>"
                + _values_table("operating point", tuple(next(iter(by_rule.values()))), by_rule))
    return ('<h3>Every threshold rule on the same held-out scores (read, not used to choose)</h3><div class="scroll">'
            + _values_table("rule", ("threshold", "accuracy", "balanced_accuracy", "sensitivity", "specificity"),
                            by_rule) + "</div>")


def _per_class_table(report: dict[str, Any]) -> str:
    return ("<h3>Per class (one vs rest)</h3>"
            + _values_table("class", ("n", "sensitivity", "specificity", "roc_auc"), report["per_class"]))


def _matrix_table(index: int, report: dict[str, Any], names: list[str],
                  cells: list[list[tuple[Any, str]]]) -> str:
    """A confusion matrix: ``cells[i][j]`` is (count, ``data-confusion`` key) of true i, predicted j."""
    rows = [header("true \\ predicted", *names)]
    rows += [row(name, [count_cell(v, f"{index}:{key}") for v, key in line]) for name, line in zip(names, cells)]
    return f"<h3>Confusion matrix, n = {escape(report.get('n_test', ''))}</h3>" + table(rows)


def _confusion_table(index: int, report: dict[str, Any]) -> str:
    """Two classes: the counts are named (tn, fp, fn, tp), negative class first."""
    c = report["confusion_matrix"]
    names = report.get("class_names") or ["negative", "positive"]
    return _matrix_table(index, report, [names[0], names[-1]],
                         [[(c[k], k) for k in ("tn", "fp")], [(c[k], k) for k in ("fn", "tp")]])


def _multiclass_matrix_table(index: int, report: dict[str, Any]) -> str:
    cells = [[(v, f"{i}:{j}") for j, v in enumerate(line)] for i, line in enumerate(report["confusion_matrix"])]
    return _matrix_table(index, report, report["class_names"], cells)


def _section(index: int, report: dict[str, Any], metrics_note: str, side: str, tail: str) -> str:
    """One report's section: its metrics with intervals, a side column, then its tables."""
    return (f'<section data-report="{index}"><h2>{escape(report["name"])}</h2>'
            '<div class="columns"><div><h3>Test metrics with 95% percentile bootstrap intervals</h3>'
            f"{_metrics_table(index, report)}{metrics_note}</div><div>{side}</div></div>{tail}</section>")


def _per_finding_table(report: dict[str, Any]) -> str:
    """Multi-label findings: each scored finding's threshold and test numbers with intervals, then the
    findings that could not be scored, each with its reason."""
    rows = [header("finding", "positives", "threshold", "AUC", "95% CI", "sensitivity", "95% CI", "specificity",
                   "95% CI")]
    for name, v in (report.get("per_finding") or {}).items():
        cells = [num_cell(v.get("n_positive")), num_cell(v.get("threshold"))]
        for key in ("roc_auc", "sensitivity", "specificity"):
            low, high = v[key]["ci95"]
            cells += [num_cell(v[key]["value"]), f"<td>{escape(format_number(low))}-{escape(format_number(high))}</td>"]
        rows.append(row(name, cells))
    skipped = "".join(f"<li>{escape(name)}: {escape(why)}</li>" for name, why in (report.get("skipped") or {}).items())
    return ('<h3>Per finding, each at its own threshold</h3><div class="scroll">' + table(rows) + "</div>"
            + (f"<p>Not scored:</p><ul>{skipped}</ul>" if skipped else ""))


def _report_section(index: int, report: dict[str, Any]) -> str:
    if report.get("kind") == "multilabel":
        rule = escape(str(report.get("threshold_rule", "")))
        return _section(index, report, "<p>auc_macro: the mean of the findings' AUCs; auc_micro: one AUC over every "
                                       f"image-finding pair. Each finding is decided at its own threshold, chosen on "
                                       f"held-out scores by the rule <code>{rule}</code>.</p>", "",
                        _per_finding_table(report))
    if report.get("kind") == "multiclass":
        from medtune.trainables.operating_point import describe_multiclass_rule

        rule = str(report.get("threshold_rule", "argmax"))
        how = ("the most probable one" if rule == "argmax" else
               f"{describe_multiclass_rule(rule)}, operating point <code>{escape(rule)}</code>")
        from medtune.trainables.multiclass_report import ORDINAL, ORDINAL_NOTE

        grades = f" {escape(ORDINAL_NOTE)}" if report.get("task") == ORDINAL else ""
        return _section(index, report, f"<p>roc_auc: macro one-vs-rest. The predicted class is {how} (no "
                                       f"threshold).{grades}</p>", _per_class_table(report),
                        _multiclass_matrix_table(index, report) + _by_rule_table(report))
    return _section(index, report, "", f"<h3>Operating point</h3>{_operating_point(index, report)}",
                    _confusion_table(index, report) + _by_rule_table(report))


# --- the rest of the page ------------------------------------------------------------------------


def _figures_section(out: Path, summary: dict[str, Any]) -> str:
    figures = []
    for name, caption in FIGURES:
        path = out / name
        if not path.is_file():
            continue
        extra = ""
        if name == "calibration.png" and summary.get("calibration"):
            extra = _calibration_caption(summary["calibration"])
        wide = ' class="wide"' if name == "gradcam.png" else ""
        figures.append(f"<figure{wide}>{image_tag(path, caption)}<figcaption>{escape(caption)}.{extra}</figcaption>"
                       "</figure>")
    return '<h2>Figures</h2><div class="figures">' + "".join(figures) + "</div>" if figures else ""


def _calibration_caption(calibration: dict[str, Any]) -> str:
    """The Brier score and ECE of the calibrated test scores (with the raw scores' before them) and the map."""
    from medtune.trainables.binary_report import describe_calibration

    brier = calibration["brier"]
    text = (f' Brier score <span class="num" data-brier="0" data-value="{escape(repr(float(brier)))}">'
            f"{escape(format_number(brier))}</span> (mean squared error of the scores against the labels; "
            "0 is perfect, 0.25 is a constant 0.5)")
    before, after = calibration.get("before"), calibration.get("after")
    if before and after:
        text += (f"; before calibration {escape(format_number(before['brier']))}. ECE (expected calibration error, "
                 f"10 bins) {escape(format_number(before['ece']))} before, "
                 f"{escape(format_number(after['ece']))} after calibration")
    if calibration.get("map"):
        text += f". Map: {escape(describe_calibration(calibration['map']))}"
    return text + "."


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _config_table(members: list[dict[str, Any]], keys: list[str]) -> str:
    rows = [header("parameter", "best model", *(f"member {i}" for i in range(1, len(members))))]
    for key in keys:
        rows.append(row(key, [f'<td data-config="{i}:{escape(key)}">{escape(_config_value(m[key])) if key in m else ""}'
                              "</td>" for i, m in enumerate(members)]))
    return table(rows, "config")


def _config_section(members: list[dict[str, Any]]) -> str:
    """The best member's configuration (params sorted); an ensemble's other members side by side.

    A single model's three dozen parameters go in two half-tables next to each other, so the page
    does not end in a long narrow column.
    """
    if not members:
        return ""
    keys = sorted({key for member in members for key in member})
    parts = [keys[: (len(keys) + 1) // 2], keys[(len(keys) + 1) // 2:]] if len(members) == 1 else [keys]
    tables = "".join(_config_table(members, part) for part in parts if part)
    return f'<h2>Configuration</h2><div class="columns">{tables}</div>'


def _facts_table(summary: dict[str, Any]) -> str:
    seconds = summary.get("train_seconds")
    facts = [("sweep", summary.get("sweep")), ("trial", summary.get("trial_id")),
             ("epochs trained", summary.get("epochs")), ("budget unit", summary.get("budget_unit")),
             ("cross-validation folds", summary.get("cv_folds")), ("training images", summary.get("train_images")),
             ("threshold images", summary.get("calibration_images")), ("images read in", summary.get("image_mode")),
             ("training time", f"{float(seconds):.0f} s" if seconds is not None else None),
             ("threshold chosen on", summary.get("threshold_source"))]
    return table(row(k, [f"<td>{escape(v)}</td>"]) for k, v in facts if v not in (None, ""))


def _mlflow_section(run: MlflowRunRef | None) -> str:
    if run is None:
        return "<p>MLflow: not logged (<code>mlflow.enabled</code> was false).</p>"
    if run.url and urlsplit(run.url).scheme in ("http", "https"):
        return (f'<p>MLflow run: <a id="mlflow-run" href="{escape(run.url)}">{escape(run.run_id)}</a> '
                f"(experiment {escape(run.experiment_id)})</p>")
    return (f'<p>MLflow run <code id="mlflow-run">{escape(run.run_id)}</code> (experiment {escape(run.experiment_id)}) '
            f"in <code>{escape(run.tracking_uri)}</code>; open it with <code>{escape(run.ui_command)}</code>.</p>")


def render_report_html(out: Path, summary: dict[str, Any], title: str, run: MlflowRunRef | None = None) -> str:
    """The page's text; images are read from ``out`` (those missing are left out)."""
    reports = summary.get("reports") or []
    body = (f"<h1>{escape(title)}</h1>"
            '<p class="lead">Held-out test split, evaluated once. 95% percentile bootstrap intervals over test '
            "images.</p>"
            f"{_mlflow_section(run)}{_facts_table(summary)}"
            '<div class="reports">' + "".join(_report_section(i, r) for i, r in enumerate(reports)) + "</div>"
            f"{_figures_section(out, summary)}{_config_section(summary.get('members') or [])}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def write_report_html(out: Path, summary: dict[str, Any], title: str, run: MlflowRunRef | None = None) -> Path:
    """Write ``out/report.html`` from ``report.json``'s dict and the plots next to it."""
    path = Path(out) / "report.html"
    path.write_text(render_report_html(Path(out), summary, title, run), encoding="utf-8")
    return path
