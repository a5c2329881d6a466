"""Deep links into MLflow's web UI, printed by ``medtune sweep``, ``best`` and ``final``.

The place to start after a sweep is its trials in MLflow's runs table, best first. MLflow 3 does
not open there on its own: an experiment's page starts on the GenAI "Overview", the runs table
lists every sweep of the experiment mixed together, sorted by start time. The link names the view
in the UI's own URL parameters (read from the UI that MLflow 3.17 bundles, and checked in a real
browser by ``tests/search/tracking/test_mlflow_ui.py``)::

    <ui>/#/experiments/<experiment id>/runs
        ?workflowType=machine_learning                  the "Model training" layout and its runs table
        &searchFilter=tags.`mlflow.parentRunId` = '<parent run id>'   this sweep's trials only
        &orderByKey=metrics.`best_<objective>`&orderByAsc=false       best first (true for a min objective)

Why each part:

- ``/runs`` in the route: ``#/experiments/<id>`` alone redirects to the default tab and drops the
  query, so the filter and the order would be lost.
- ``workflowType=machine_learning``: without it a browser that never chose otherwise shows the
  GenAI layout (Overview, Traces, Evaluation runs...); the runs table is there too, but titled
  "Training runs" among GenAI pages. The parameter selects the layout whatever the browser
  last used.
- ``searchFilter``: MLflow's search syntax, exactly what a user would type in the search box. Each
  trial's run carries ``mlflow.parentRunId``; the sweep's parent run itself and the trials of the
  experiment's other sweeps are left out. (With a filter the UI also stops fetching parent runs to
  nest children under them, so the trials are listed flat, as rows of their own.)
- ``orderByKey=metrics.`best_<objective>```: each trial run logs the best value of the objective
  over its epochs as ``best_<objective>`` when it ends (``search/tracking/callback.py``). ``metrics.<objective>``
  would sort by the last epoch's value, which is not the best for a trial that peaked early.

What a URL cannot do: choose the table's columns. Which metric and parameter columns show is kept
in the browser's local storage, or in a "shared view" (``viewStateShareKey``), whose state MLflow
keeps as an experiment tag; ``shared_view_tag`` builds such a tag for a caller that may write one.
By default the table shows run name, creation time, dataset, duration, source and models: the
names (``03 mobilenetv2_100 fd1 done``) say which trial is which, and the order says which is best.

Links to a run or an artifact (``run_link``, ``artifact_link``) stay bare hash routes. MLflow shows a run
page in its GenAI layout (even when reached from the model-training runs table) unless it is
given ``?workflowType=machine_learning`` too, but after an artifact path that query is read as
part of the path and the artifact view fails ("Something went wrong").

Links never carry credentials: every tracking URI passes through ``redact_uri`` first. For a local
store (sqlite, a folder, a database) there is no web server yet; the link is given for the address
``mlflow ui`` serves by default, ``http://127.0.0.1:5000``, with the command that serves the store.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote, urlencode, urlsplit

from medtune.search.credentials import has_userinfo, redact_uri


def run_link(experiment_id: str, run_id: str) -> str:
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def artifact_link(experiment_id: str, run_id: str, path: str) -> str:
    return f"{run_link(experiment_id, run_id)}/artifacts/{path}"


#: Where ``mlflow ui`` (and ``mlflow server``) listen when given no ``--host``/``--port``.
DEFAULT_UI_URL = "http://127.0.0.1:5000"

#: The UI layout that holds the runs table (MLflow 3's other one, ``genai``, opens on an overview).
MODEL_TRAINING = "machine_learning"

#: Experiment tag prefix under which MLflow's UI keeps a shared view's state (its "Share" button).
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."


@dataclass(frozen=True)
class UiServer:
    """Where a tracking store's web UI is: ``url`` without a trailing slash, and for a local store
    the ``serve_command`` that puts it there (None: the tracking URI is the server itself)."""

    url: str
    serve_command: str | None = None
    #: the store's URI had credentials, which the printed command leaves out
    credentials_left_out: bool = False

    def link(self, route: str) -> str:
        """A full URL from one of the UI's hash routes (``#/experiments/...``)."""
        return f"{self.url}/{route}"


def ui_server(tracking_uri: str) -> UiServer | None:
    """The UI for a tracking URI, or None where medtune cannot know its address (Databricks).

    An ``http(s)://`` tracking URI is the UI too (MLflow serves its UI and API under one root,
    a ``--static-prefix`` included). Any other store has no server until one is started: the
    command is ``mlflow ui``, which listens on :data:`DEFAULT_UI_URL`. The URI in the command is
    redacted like every printed URI; a database URI that had a password says so.
    """
    uri = redact_uri(tracking_uri.strip())
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        return UiServer(uri.rstrip("/"))
    if scheme.startswith("databricks") or uri == "databricks":
        return None
    return UiServer(DEFAULT_UI_URL, f"mlflow ui --backend-store-uri {shlex.quote(uri)}", has_userinfo(tracking_uri))


def sweep_filter(parent_run_id: str) -> str:
    """MLflow search syntax for a sweep's trials: the runs whose parent is the sweep's run."""
    return f"tags.`mlflow.parentRunId` = '{parent_run_id}'"


def best_metric_key(metric: str) -> str:
    """The runs-table sort key of a trial's best objective value (the metric ``best_<metric>``)."""
    return f"metrics.`best_{metric}`"


def experiment_runs_route(experiment_id: str, *, search_filter: str | None = None, order_by_key: str | None = None,
                          order_by_asc: bool | None = None) -> str:
    """The hash route of an experiment's runs table in the model-training layout, with the given
    search box text and sort; spaces are encoded as ``%20`` (the UI decodes both that and ``+``)."""
    params: dict[str, str] = {"workflowType": MODEL_TRAINING}
    if search_filter:
        params["searchFilter"] = search_filter
    if order_by_key:
        params["orderByKey"] = order_by_key
        params["orderByAsc"] = "true" if order_by_asc else "false"
    return f"#/experiments/{quote(str(experiment_id), safe='')}/runs?{urlencode(params, quote_via=quote)}"


def sweep_runs_route(experiment_id: str, parent_run_id: str, metric: str, mode: str) -> str:
    """The sweep's trials, best first: filtered on the parent run, sorted by ``best_<metric>``
    (descending for a ``max`` objective such as val_auc, ascending for ``min`` such as val_loss)."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return experiment_runs_route(experiment_id, search_filter=sweep_filter(parent_run_id),
                                 order_by_key=best_metric_key(metric), order_by_asc=mode == "min")


def shared_view_tag(experiment_id: str, parent_run_id: str, metric: str, mode: str,
                    columns: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """(tag key, tag value, route) of a shared view of the sweep's trials that also shows columns.

    A URL cannot pick the table's columns, but MLflow's "Share" button stores a view's state as
    the experiment tag ``mlflow.sharedViewState.<key>`` and opens it from
    ``?viewStateShareKey=<key>``. The sweep's driver writes that tag when the sweep ends
    (``sweep_view_columns``), so the link it prints shows ``best_<metric>`` and the searched values.
    ``columns`` are runs-table column keys (``params.`lr```); ``best_<metric>`` and ``best_epoch``
    come first. The key is a hash of the state, so the same view is written once.
    """
    state = {
        "searchFilter": sweep_filter(parent_run_id),
        "orderByKey": best_metric_key(metric),
        "orderByAsc": mode == "min",
        "selectedColumns": [best_metric_key(metric), "metrics.`best_epoch`", *columns],
    }
    value = json.dumps(state, sort_keys=True)
    key = hashlib.sha256(value.encode()).hexdigest()[:32]
    route = (f"#/experiments/{quote(str(experiment_id), safe='')}/runs?"
             f"{urlencode({'workflowType': MODEL_TRAINING, 'viewStateShareKey': key})}")
    return SHARED_VIEW_TAG_PREFIX + key, value, route


def sweep_view_columns(searched: Iterable[str]) -> tuple[str, ...]:
    """The shared view's columns after ``best_<metric>`` and ``best_epoch``: the searched values."""
    return tuple(f"params.`{name}`" for name in searched)


def _serve_hint(server: UiServer) -> list[str]:
    if server.serve_command is None:
        return []
    credentials = ", with the store's credentials (not printed)" if server.credentials_left_out else ""
    return [f"  (a local store: serve it first with `{server.serve_command}`{credentials}; it listens on {server.url})"]


def sweep_link_lines(tracking_uri: str, experiment_id: str, parent_run_id: str, metric: str, mode: str,
                     route: str | None = None) -> list[str]:
    """The lines printed after a sweep (and by ``best``): the link to its trials, best first (the
    shared view's ``route`` when the sweep wrote one), and for a local store how to serve it.
    Empty where the UI's address is unknown."""
    server = ui_server(tracking_uri)
    if server is None:
        return []
    url = server.link(route or sweep_runs_route(experiment_id, parent_run_id, metric, mode))
    order = "highest" if mode == "max" else "lowest"
    return [f"MLflow UI, this sweep's trials by best {metric} ({order} first): {url}", *_serve_hint(server)]


def final_link_lines(tracking_uri: str, experiment_id: str, run_id: str, sweep: tuple[str, str, str, str] | None,
                     report: str = "report/report.html") -> list[str]:
    """The lines printed after ``medtune final``: its report in the run's artifact view, the run,
    and (``sweep``: experiment id, parent run id, metric, mode) the sweep it came from."""
    server = ui_server(tracking_uri)
    if server is None:
        return []
    lines = [f"MLflow UI, the final run's test report: {server.link(artifact_link(experiment_id, run_id, report))}",
             f"  the final run: {server.link(run_link(experiment_id, run_id))}"]
    if sweep is not None:
        sweep_experiment, parent, metric, mode = sweep
        route = sweep_runs_route(sweep_experiment, parent, metric, mode)
        lines.append(f"  the sweep's trials, best first: {server.link(route)}")
    return lines + _serve_hint(server)
