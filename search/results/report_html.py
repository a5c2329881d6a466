"""``report.html``: the final run's test report as one self-contained page.

``report.md`` reads well in MLflow's artifact view but leaves the plots as separate files; a
clinician or reviewer who is sent the report needs one file that opens anywhere, offline, and shows
everything: the metrics with their intervals, the operating point, the ROC curve, the confusion
matrix, the Grad-CAM sample, how well the scores are calibrated, the configuration and where the
MLflow run is. So the page carries its images as ``data:`` URIs and its CSS inline, loads nothing
(a Content-Security-Policy forbids it), and escapes every piece of text, since configuration
values and names come from user-written space files.

The page is rendered from the dict ``report.json`` holds, so every number it shows is the one the
machine-readable report records (each value cell carries the raw number in ``data-value``).

The calibration section is computed here too (``write_calibration``): a threshold-based report
says nothing about whether a score of 0.8 means an 80% chance, which matters to anyone who reads
the score itself; the reliability diagram and Brier score show it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

#: Equal-width score bins of the reliability diagram: 10 is the usual choice, and with a few hundred
#: test images each populated bin still holds enough images for its observed fraction to mean much.
CALIBRATION_BINS = 10

#: The plots ``medtune final`` writes, in the order the page shows them, with their captions.
FIGURES = (
    ("roc_curve.png", "ROC curve on the test split, with the chosen operating point"),
    ("confusion_matrix.png", "Confusion matrix at the chosen threshold (rows: true class, columns: predicted)"),
    ("calibration.png", "Reliability diagram of the best model's test scores"),
    ("gradcam.png", "Grad-CAM heat maps over a fixed sample of test images"),
)

#: Nothing may load from outside the page; images only from data: URIs, style only inline, no script.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328;
       background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
p.lead { color: #57606a; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, monospace; }
table.kv td.num { text-align: left; }
.reports { display: flex; flex-wrap: wrap; gap: 28px; }
.reports section { flex: 1 1 460px; min-width: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
figure { margin: 0; flex: 0 1 calc(50% - 10px); min-width: 300px; }
figure img { display: block; max-width: 100%; max-height: 520px; height: auto; margin: 0 auto;
             border: 1px solid #d0d7de; }
figure.wide { flex-basis: 100%; }
figure.wide img { max-height: none; }
figcaption { font-size: 0.85em; color: #57606a; margin-top: 4px; }
.columns { display: flex; flex-wrap: wrap; gap: 0 24px; align-items: flex-start; }
code { font-family: ui-monospace, monospace; background: #f6f8fa; padding: 1px 4px; border-radius: 3px;
       overflow-wrap: anywhere; }
.config td { font-family: ui-monospace, monospace; font-size: 0.9em; overflow-wrap: anywhere; }
"""


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


# --- calibration ---------------------------------------------------------------------------------


def calibration_summary(scores: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Brier score and the reliability diagram's bins (positive class = label 1, as in the report).

    Each bin records its edges, its image count, its mean score and the observed share of positives,
    so the diagram can be redrawn from ``report.json`` and empty bins are visible as empty (sklearn's
    ``calibration_curve`` drops them and keeps no counts). Bins are assigned as sklearn does.
    """
    from sklearn.metrics import brier_score_loss

    scores = np.asarray(scores, dtype=np.float64)
    positive = (np.asarray(labels) == 1).astype(np.int64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], scores, side="right")
    table = []
    for k in range(bins):
        inside = which == k
        n = int(inside.sum())
        table.append({"low": float(edges[k]), "high": float(edges[k + 1]), "count": n,
                      "mean_score": float(scores[inside].mean()) if n else None,
                      "fraction_positive": float(positive[inside].mean()) if n else None})
    return {"brier": float(brier_score_loss(positive, scores)), "n": int(len(scores)), "bins": table}


def plot_calibration(calibration: dict[str, Any], path: Path) -> None:
    """Reliability diagram (observed share of positives against mean score per bin) over a histogram
    of the scores, so a bin's point can be weighed by how many images it holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    filled = [b for b in calibration["bins"] if b["count"]]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot([b["mean_score"] for b in filled], [b["fraction_positive"] for b in filled], "o-",
            label=f"best model (Brier {calibration['brier']:.4f})")
    ax.set(ylabel="observed share of positives", xlim=(0, 1), ylim=(0, 1),
           title="Calibration, held-out test split")
    ax.legend(loc="upper left", fontsize=8)
    lows = [b["low"] for b in calibration["bins"]]
    widths = [b["high"] - b["low"] for b in calibration["bins"]]
    hist.bar(lows, [b["count"] for b in calibration["bins"]], width=widths, align="edge", color="#8fb8de",
             edgecolor="white")
    hist.set(xlabel="predicted probability of the positive class", ylabel="images")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_calibration(out: Path, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``calibration.png`` in ``out``; returns the numbers for ``report.json``."""
    calibration = calibration_summary(scores, labels)
    plot_calibration(calibration, out / "calibration.png")
    return calibration


# --- the page ------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Text for the page: every value goes through here, quotes included (it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def format_number(value: Any) -> str:
    """How the page shows a metric: 4 decimals, ``n/a`` for a missing or undefined (NaN) value."""
    if value is None:
        return "n/a"
    number = float(value)
    return f"{number:.4f}" if math.isfinite(number) else "n/a"


def _num_cell(value: Any, **data: str) -> str:
    """A number cell whose ``data-value`` is the exact number (``repr``) the JSON holds."""
    attrs = "".join(f' data-{k.replace("_", "-")}="{_e(v)}"' for k, v in data.items())
    raw = "" if value is None else repr(float(value))
    return f'<td class="num"{attrs} data-value="{_e(raw)}">{_e(format_number(value))}</td>'


def _image_tag(path: Path, alt: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{_e(alt)}">'


def _metrics_table(index: int, report: dict[str, Any]) -> str:
    rows = ["<tr><th>metric</th><th>value</th><th>95% CI low</th><th>95% CI high</th></tr>"]
    for name, entry in report["metrics"].items():
        low, high = entry["ci95"]
        rows.append(f"<tr><th>{_e(name)}</th>{_num_cell(entry['value'], metric=f'{index}:{name}')}"
                    f"{_num_cell(low, ci=f'{index}:{name}:low')}{_num_cell(high, ci=f'{index}:{name}:high')}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _operating_point(index: int, report: dict[str, Any]) -> str:
    from medtune.trainables.report import describe_threshold_rule

    rule = str(report.get("threshold_rule", ""))
    low, high = (report.get("tied_interval") or [None, None])[:2]
    rows = [f"<tr><th>threshold</th>{_num_cell(report['threshold'], threshold=str(index))}</tr>",
            f"<tr><th>rule</th><td><code>{_e(rule)}</code> ({_e(describe_threshold_rule(rule, report['threshold']))})"
            "</td></tr>",
            f"<tr><th>tied interval on validation</th><td>({_e(format_number(low))}, {_e(format_number(high))}], "
            f"logit width {_e(format_number(report.get('tied_logit_width')))}</td></tr>",
            f"<tr><th>accuracy at 0.5</th>{_num_cell(report.get('accuracy_at_0.5'))}</tr>"]
    return '<table class="kv">' + "".join(rows) + "</table>"


def _by_rule_table(report: dict[str, Any]) -> str:
    by_rule = report.get("by_rule") or {}
    if not by_rule:
        return ""
    columns = ("threshold", "accuracy", "sensitivity", "specificity")
    rows = ["<tr><th>rule</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"]
    for rule, values in by_rule.items():
        rows.append(f"<tr><th>{_e(rule)}</th>" + "".join(_num_cell(values.get(c)) for c in columns) + "</tr>")
    return ("<h3>Every threshold rule on the same validation scores (read, not used to choose)</h3>"
            "<table>" + "".join(rows) + "</table>")


def _confusion_table(index: int, report: dict[str, Any]) -> str:
    c = report["confusion_matrix"]
    names = report.get("class_names") or ["negative", "positive"]
    neg, pos = _e(names[0]), _e(names[-1])

    def cell(key: str) -> str:
        return f'<td class="num" data-confusion="{index}:{key}">{int(c[key])}</td>'

    return (f"<h3>Confusion matrix, n = {_e(report.get('n_test', ''))}</h3><table>"
            f"<tr><th>true \\ predicted</th><th>{neg}</th><th>{pos}</th></tr>"
            f"<tr><th>{neg}</th>{cell('tn')}{cell('fp')}</tr><tr><th>{pos}</th>{cell('fn')}{cell('tp')}</tr></table>")


def _per_class_table(report: dict[str, Any]) -> str:
    columns = ("n", "sensitivity", "specificity", "roc_auc")
    rows = ["<tr><th>class</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"]
    for name, values in report["per_class"].items():
        rows.append(f"<tr><th>{_e(name)}</th>" + "".join(_num_cell(values.get(c)) for c in columns) + "</tr>")
    return "<h3>Per class (one vs rest)</h3><table>" + "".join(rows) + "</table>"


def _matrix_table(index: int, report: dict[str, Any]) -> str:
    names = [_e(n) for n in report["class_names"]]
    rows = ["<tr><th>true \\ predicted</th>" + "".join(f"<th>{n}</th>" for n in names) + "</tr>"]
    for i, (name, row) in enumerate(zip(names, report["confusion_matrix"])):
        rows.append(f"<tr><th>{name}</th>" + "".join(
            f'<td class="num" data-confusion="{index}:{i}:{j}">{int(v)}</td>' for j, v in enumerate(row)) + "</tr>")
    return f"<h3>Confusion matrix, n = {_e(report.get('n_test', ''))}</h3><table>" + "".join(rows) + "</table>"


def _multiclass_section(index: int, report: dict[str, Any]) -> str:
    return (f'<section data-report="{index}"><h2>{_e(report["name"])}</h2>'
            '<div class="columns"><div><h3>Test metrics with 95% percentile bootstrap intervals</h3>'
            f"{_metrics_table(index, report)}<p>roc_auc: macro one-vs-rest. The predicted class is the most "
            f"probable one (no threshold).</p></div><div>{_per_class_table(report)}</div></div>"
            f"{_matrix_table(index, report)}</section>")


def _report_section(index: int, report: dict[str, Any]) -> str:
    if report.get("kind") == "multiclass":
        return _multiclass_section(index, report)
    return (f'<section data-report="{index}"><h2>{_e(report["name"])}</h2>'
            '<div class="columns"><div><h3>Test metrics with 95% percentile bootstrap intervals</h3>'
            f"{_metrics_table(index, report)}</div>"
            f"<div><h3>Operating point</h3>{_operating_point(index, report)}</div></div>"
            f"{_confusion_table(index, report)}{_by_rule_table(report)}</section>")


def _figures_section(out: Path, summary: dict[str, Any]) -> str:
    figures = []
    for name, caption in FIGURES:
        path = out / name
        if not path.is_file():
            continue
        extra = ""
        if name == "calibration.png" and summary.get("calibration"):
            brier = summary["calibration"]["brier"]
            extra = (f' Brier score <span class="num" data-brier="0" data-value="{_e(repr(float(brier)))}">'
                     f"{_e(format_number(brier))}</span> (mean squared error of the scores against the labels; "
                     "0 is perfect, 0.25 is a constant 0.5).")
        wide = ' class="wide"' if name == "gradcam.png" else ""
        figures.append(f"<figure{wide}>{_image_tag(path, caption)}<figcaption>{_e(caption)}.{extra}</figcaption></figure>")
    return '<h2>Figures</h2><div class="figures">' + "".join(figures) + "</div>" if figures else ""


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _config_table(members: list[dict[str, Any]], keys: list[str]) -> str:
    head = "<tr><th>parameter</th><th>best model</th>" + "".join(
        f"<th>member {i}</th>" for i in range(1, len(members))) + "</tr>"
    rows = [head]
    for key in keys:
        cells = "".join(f'<td data-config="{i}:{_e(key)}">{_e(_config_value(m[key])) if key in m else ""}</td>'
                        for i, m in enumerate(members))
        rows.append(f"<tr><th>{_e(key)}</th>{cells}</tr>")
    return '<table class="config">' + "".join(rows) + "</table>"


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
    facts = [("sweep", summary.get("sweep")), ("trial", summary.get("trial_id")),
             ("epochs trained", summary.get("epochs")), ("budget unit", summary.get("budget_unit")),
             ("cross-validation folds", summary.get("cv_folds")), ("training images", summary.get("train_images")),
             ("threshold images", summary.get("calibration_images")),
             ("training time", f"{float(summary['train_seconds']):.0f} s" if summary.get("train_seconds") is not None
              else None),
             ("threshold chosen on", summary.get("threshold_source"))]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if v not in (None, ""))
    return f"<table>{rows}</table>"


def _mlflow_section(run: MlflowRunRef | None) -> str:
    if run is None:
        return "<p>MLflow: not logged (<code>mlflow.enabled</code> was false).</p>"
    if run.url and urlsplit(run.url).scheme in ("http", "https"):
        return (f'<p>MLflow run: <a id="mlflow-run" href="{_e(run.url)}">{_e(run.run_id)}</a> '
                f"(experiment {_e(run.experiment_id)})</p>")
    return (f'<p>MLflow run <code id="mlflow-run">{_e(run.run_id)}</code> (experiment {_e(run.experiment_id)}) in '
            f"<code>{_e(run.tracking_uri)}</code>; open it with <code>{_e(run.ui_command)}</code>.</p>")


def render_report_html(out: Path, summary: dict[str, Any], title: str, run: MlflowRunRef | None = None) -> str:
    """The page's text; images are read from ``out`` (those missing are left out)."""
    reports = summary.get("reports") or []
    body = (f"<h1>{_e(title)}</h1>"
            '<p class="lead">Held-out test split, evaluated once. 95% percentile bootstrap intervals over test '
            "images.</p>"
            f"{_mlflow_section(run)}{_facts_table(summary)}"
            '<div class="reports">' + "".join(_report_section(i, r) for i, r in enumerate(reports)) + "</div>"
            f"{_figures_section(out, summary)}{_config_section(summary.get('members') or [])}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def write_report_html(out: Path, summary: dict[str, Any], title: str, run: MlflowRunRef | None = None) -> Path:
    """Write ``out/report.html`` from ``report.json``'s dict and the plots next to it."""
    path = Path(out) / "report.html"
    path.write_text(render_report_html(Path(out), summary, title, run), encoding="utf-8")
    return path
