"""The links medtune prints and writes, opened in MLflow's real web UI in a headless Chromium.

A small real store is built without Ray or training, in seconds: MLflow's client writes what a
sweep writes (a parent run with medtune's tags, params, artifacts and the note ``sweep_note``
makes; six trial runs named as the tracking callback names them, with per-epoch ``val_auc`` and
``best_val_auc``), a second sweep in the same experiment whose trials must not show, and a final
run linked both ways by ``link_final_and_sweep``. A real ``mlflow server`` (``mlflow/start-server.sh``)
serves it; the page is MLflow 3.17's own UI, so these tests fail when a UI change breaks a link.
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest
from helpers import REPO, MlflowServer, free_port

EXPERIMENT = "ui-links"
#: best_val_auc of the six trials of the sweep under test, by trial number (01..06): not in rank order.
TRIAL_VALUES = (0.91, 0.97, 0.85, 0.95, 0.88, 0.93)
#: The other sweep's trials: one beats them all, so a filter that let it in would change the first row.
OTHER_VALUES = (0.99, 0.80)
WAIT_MS = 30_000
#: A real MLflow server and a headless browser: a minute on 2 cores, out of the fast loop.
pytestmark = pytest.mark.slow
#: MLflow 3's server otherwise starts seven job-runner processes (for GenAI jobs) that the UI needs not.
NO_SERVER_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
#: The sweep's plots, as PNGs of different widths: the image the artifact view draws says which file it shows.
PNG_WIDTHS = {"learning_curves.png": 48, "param_importances.png": 56}



def tiny_png(width: int = 48, height: int = 32, rgb: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    """A real PNG of one colour (what MLflow's image viewer must draw), without matplotlib."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@dataclass
class Store:
    """What the fake sweep wrote: ids to find in the UI, and the note as MLflow holds it."""

    db: Path
    experiment_id: str
    parent_run_id: str
    run_name: str
    #: trial run id -> run name, in the order of best_val_auc descending (the order the link must show)
    ranked: list[tuple[str, str]]
    other_parent_run_id: str
    other_run_ids: list[str]
    final_run_id: str
    final_run_name: str
    note: str
    artifacts: list[str] = field(default_factory=list)


def _log_sweep(client: Any, experiment_id: str, run_name: str, values: tuple[float, ...], root: Path,
               spec: Any, artifacts: bool) -> tuple[str, list[tuple[str, str, float]]]:
    """One sweep as medtune logs it: the parent run, and a child run per trial. Returns the parent's
    id and (run id, run name, best value) per trial."""
    from mlflow.entities import Metric, Param, RunTag

    from medtune.search.results.leaderboard import LeaderboardEntry
    from medtune.search.tracking.run_notes import NOTE_TAG, sweep_note
    from medtune.search.tracking.run_tags import run_tags

    parent = client.create_run(experiment_id, run_name=run_name, tags=run_tags({
        "medtune.kind": "sweep", "medtune.run_name": run_name, "medtune.space_file": spec.source,
        "medtune.space_hash": spec.content_hash(), "medtune.metric": f"{spec.metric.name} ({spec.metric.mode})"}))
    parent_id = parent.info.run_id
    client.log_batch(parent_id, params=[Param("metric", spec.metric.name), Param("mode", spec.metric.mode),
                                        Param("scheduler", "asha"), Param("num_samples", str(len(values)))])
    now = int(time.time() * 1000)
    trials, entries = [], []
    for number, value in enumerate(values, start=1):
        trial_id = f"{run_name[-1]}{number:04d}"
        stopped = number % 2 == 0
        name = f"{number:02d} mobilenetv2_100 fd1 {'stopped@1' if stopped else 'done'}"
        best_epoch, epochs = (1, (1,)) if stopped else (2, (1, 2, 3))  # ASHA stopped it after one epoch
        run = client.create_run(experiment_id, run_name=name, tags={
            "mlflow.parentRunId": parent_id, "medtune.trial_id": trial_id, "medtune.architecture": "mobilenetv2_100",
            "medtune.outcome": "stopped_early" if stopped else "completed", "medtune.best_epoch": str(best_epoch),
            f"medtune.best_{spec.metric.name}": repr(value)})
        history = [Metric("val_auc", value - 0.05 * abs(best_epoch - epoch), now, epoch) for epoch in epochs]
        client.log_batch(run.info.run_id, params=[Param("architecture", "mobilenetv2_100"),
                                                  Param("lr", f"{1e-3 * number:.4g}"), Param("frozen_depth", "1")],
                         metrics=[*history, Metric("best_val_auc", value, now, 0),
                                  Metric("best_epoch", float(best_epoch), now, 0)])
        client.set_terminated(run.info.run_id)
        trials.append((run.info.run_id, name, value))
        entries.append(LeaderboardEntry(trial_id, {}, value, best_epoch, len(epochs), {},
                                        outcome="stopped_early" if stopped else "completed"))
    entries.sort(key=lambda e: -e.best_value)
    logged: list[str] = []
    if artifacts:
        folder = root / f"artifacts-{run_name}"
        (folder / "plots").mkdir(parents=True)
        (folder / "best_config.yaml").write_text(f"name: {spec.name}-best\nfixed:\n  architecture: mobilenetv2_100\n"
                                                 f"  lr: 0.002\nprovenance:\n  parent_run_id: {parent_id}\n")
        (folder / "leaderboard.csv").write_text("rank,trial_id,best_val_auc\n1,A0002,0.97\n2,A0004,0.95\n")
        for name, rgb in (("learning_curves.png", (200, 60, 40)), ("param_importances.png", (40, 160, 60))):
            (folder / "plots" / name).write_bytes(tiny_png(PNG_WIDTHS[name], rgb=rgb))
        client.log_artifacts(parent_id, str(folder))
        logged = ["best_config.yaml", "leaderboard.csv", "plots/learning_curves.png", "plots/param_importances.png"]
    note = sweep_note(client, experiment_id, parent_id, run_name, spec, entries, logged)
    client.log_batch(parent_id, metrics=[Metric("best_val_auc", max(values), now, 0)],
                     tags=[RunTag(NOTE_TAG, note), RunTag("medtune.best_trial", entries[0].trial_id)])
    client.set_terminated(parent_id)
    return parent_id, trials


def build_store(root: Path) -> Store:
    """The store the tests open: two sweeps in one experiment, and a final run of the first."""
    from medtune.search.spec.loader import load_spec
    from medtune.search.tracking.run_notes import NOTE_TAG, link_final_and_sweep
    from mlflow import MlflowClient

    db = root / "mlruns.db"
    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "mlartifacts").as_uri())
    spec = load_spec(REPO / "spaces" / "demo.yaml", ["name=ui-links", "search.num_samples=6"])
    other_id, other = _log_sweep(client, experiment_id, "ui-links-B", OTHER_VALUES, root, spec, artifacts=False)
    parent_id, trials = _log_sweep(client, experiment_id, "ui-links-A", TRIAL_VALUES, root, spec, artifacts=True)

    final_name = "final ui-links-A mobilenetv2_100 fd1"
    final = client.create_run(experiment_id, run_name=final_name, tags={"medtune.kind": "final"})
    report_dir = root / "final-report"
    report_dir.mkdir()
    (report_dir / "report.html").write_text("<!doctype html><title>Final test report</title>"
                                            "<h1>Final test report: ui-links</h1><p>test AUC 0.9600</p>")
    client.log_artifacts(final.info.run_id, str(report_dir), artifact_path="report")
    final_spec = SimpleNamespace(provenance={"parent_run_id": parent_id, "sweep": "ui-links-A", "trial_id": "A0002"})
    report = SimpleNamespace(metrics={"roc_auc": 0.96}, intervals={"roc_auc": (0.94, 0.98)})
    link_final_and_sweep(client, final_spec, experiment_id, final.info.run_id, report)
    client.set_terminated(final.info.run_id)

    ranked = [(run_id, name) for run_id, name, _ in sorted(trials, key=lambda t: -t[2])]
    return Store(db, experiment_id, parent_id, "ui-links-A", ranked, other_id, [t[0] for t in other],
                 final.info.run_id, final_name, client.get_run(parent_id).data.tags[NOTE_TAG],
                 ["best_config.yaml", "leaderboard.csv", "plots/learning_curves.png", "plots/param_importances.png"])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The store behind a real ``mlflow server`` on a free port: (store, base URL).

    The server starts first and creates the database (MLflow's migrations take seconds) while this
    process imports what it needs; the store is written once the server answers."""
    import threading

    root = tmp_path_factory.mktemp("mlflow-ui")
    server = MlflowServer(root, free_port(), f"sqlite:///{root / 'mlruns.db'}", str(root / "served-artifacts"),
                          NO_SERVER_JOBS)
    failed: list[BaseException] = []
    starting = threading.Thread(target=lambda: _record_failure(server.start, failed))
    starting.start()
    from mlflow.tracking.context.registry import resolve_tags

    import medtune.api  # noqa: F401  (the imports of build_store and the CLI, meanwhile)
    import medtune.cli  # noqa: F401
    import medtune.search.tracking.callback  # noqa: F401

    resolve_tags({})
    starting.join()
    if failed:
        raise failed[0]
    try:
        yield build_store(root), server.uri
    finally:
        server.stop()


def _record_failure(call: Any, failed: list[BaseException]) -> None:
    try:
        call()
    except BaseException as exc:  # raised again in the fixture's thread
        failed.append(exc)



@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # a fresh profile: no saved UI state
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


# --- what the commands print -----------------------------------------------------------------------


@dataclass
class Printed:
    sweep: list[str]
    best: list[str]
    final: list[str]


def _run_cli(argv: list[str], fake: str, returned: Any) -> list[str]:
    """``medtune <argv>`` with the API call behind it (``medtune.api.<fake>``) answered from the
    fake store: what the command prints afterwards, links included, is real."""
    import contextlib
    import io

    import medtune.api
    from medtune.cli import main

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(medtune.api, fake, lambda *args, **kwargs: returned)
        code = main(argv)
    assert code == 0, out.getvalue()
    return out.getvalue().splitlines()


@pytest.fixture(scope="module")
def printed(served, tmp_path_factory) -> Printed:
    """What ``medtune sweep``, ``best`` and ``final`` print for the store's sweep and final run."""
    from medtune.api import BestConfig
    from medtune.search.results.leaderboard import LeaderboardEntry
    from medtune.search.spec.loader import dump_yaml, load_spec

    store, _ = served
    folder = tmp_path_factory.mktemp("cli")
    uri = f"sqlite:///{store.db}"
    spec = load_spec(REPO / "spaces" / "demo.yaml", [f"mlflow.tracking_uri={uri}"])
    sweep = _run_cli(["sweep", str(REPO / "spaces" / "demo.yaml")], "sweep", SimpleNamespace(
        run_path=str(folder / "ray_results"), spec=spec, parent_run_id=store.parent_run_id,
        best_config_path=folder / "best_config.yaml", experiment_id=store.experiment_id, view_route=None))
    provenance = {"sweep": store.run_name, "metric": "val_auc", "experiment": EXPERIMENT,
                  "parent_run_id": store.parent_run_id, "tracking_uri": uri}
    document = {**spec.raw, "provenance": provenance}
    found = BestConfig(document, [LeaderboardEntry("A0002", {}, 0.97, 1, 1, {})], folder / "best.yaml")
    best = _run_cli(["best", EXPERIMENT, "--tracking-uri", uri], "best", found)
    best_yaml = dump_yaml(document, folder / "best.yaml")
    final = _run_cli(["final", str(best_yaml)], "final", SimpleNamespace(
        out_dir=folder / "final", run_id=store.final_run_id, model_uri=None, tracking_uri=uri,
        experiment_id=store.experiment_id, sweep_link=(store.experiment_id, store.parent_run_id, "val_auc", "max")))
    return Printed(sweep, best, final)


def _link(lines: list[str], label: str) -> str:
    """The URL printed on the line that starts with ``label`` (after indentation)."""
    found = [line.split(": ", 1)[1] for line in lines if line.strip().startswith(label)]
    assert len(found) == 1, (label, lines)
    return found[0]


def _on(url: str, server: str) -> str:
    """A printed local-store link moved to the test's server (``mlflow ui`` would serve it at :5000)."""
    from medtune.search.tracking.ui_links import DEFAULT_UI_URL

    assert url.startswith(DEFAULT_UI_URL + "/#/"), url
    return server + url[len(DEFAULT_UI_URL):]


def test_each_command_prints_the_sweeps_runs_table_and_how_to_serve_the_store(served, printed):
    from medtune.search.tracking.ui_links import sweep_runs_route

    store, _ = served
    route = sweep_runs_route(store.experiment_id, store.parent_run_id, "val_auc", "max")
    serve = f"`mlflow ui --backend-store-uri sqlite:///{store.db}`"
    for lines in (printed.sweep, printed.best):
        assert _link(lines, "MLflow UI, this sweep's trials by best val_auc (highest first)").endswith(route)
        assert any(serve in line and "http://127.0.0.1:5000" in line for line in lines), lines
    assert _link(printed.final, "the sweep's trials, best first").endswith(route)
    final_run = f"#/experiments/{store.experiment_id}/runs/{store.final_run_id}"
    assert _link(printed.final, "the final run:").endswith(final_run)
    report = _link(printed.final, "MLflow UI, the final run's test report")
    assert report.endswith(f"{final_run}/artifacts/report/report.html")
    query = parse_qs(route.split("?", 1)[1])
    assert query == {"workflowType": ["machine_learning"], "orderByKey": ["metrics.`best_val_auc`"],
                     "orderByAsc": ["false"], "searchFilter": [f"tags.`mlflow.parentRunId` = '{store.parent_run_id}'"]}


def test_a_link_that_cannot_be_built_is_a_warning_not_a_failed_command(served, caplog):
    from medtune.api import BestConfig
    from medtune.search.results.leaderboard import LeaderboardEntry

    store, _ = served
    document = {"metric": {"name": "val_auc"}, "provenance": {
        "sweep": "gone", "metric": "val_auc", "parent_run_id": "0" * 32, "tracking_uri": f"sqlite:///{store.db}"}}
    found = BestConfig(document, [LeaderboardEntry("t", {}, 0.9, 1, 1, {})], Path("best.yaml"))
    lines = _run_cli(["best", EXPERIMENT, "--tracking-uri", f"sqlite:///{store.db}"], "best", found)
    assert lines[0].startswith("Best of 1 trials of sweep gone") and len(lines) == 1
    assert "no MLflow UI link" in caplog.text


def test_links_carry_no_credentials_and_follow_the_kind_of_store():
    from medtune.search.tracking.ui_links import final_link_lines, sweep_link_lines, ui_server

    lines = sweep_link_lines("https://alice:s3cret@mlflow.example.org/mlflow/", "7", "P", "val_loss", "min")
    assert lines == ["MLflow UI, this sweep's trials by best val_loss (lowest first): "
                     "https://mlflow.example.org/mlflow/#/experiments/7/runs?workflowType=machine_learning"
                     "&searchFilter=tags.%60mlflow.parentRunId%60%20%3D%20%27P%27"
                     "&orderByKey=metrics.%60best_val_loss%60&orderByAsc=true"]
    db = final_link_lines("postgresql://bob:hunter2@db.internal/mlflow", "7", "R", None)
    assert all("hunter2" not in line and "bob" not in line for line in db)
    assert db[0].startswith("MLflow UI, the final run's test report: http://127.0.0.1:5000/#/experiments/7/runs/R/"
                            "artifacts/report/report.html")
    assert "`mlflow ui --backend-store-uri postgresql://db.internal/mlflow`, with the store's credentials" in db[-1]
    assert ui_server("databricks") is None and sweep_link_lines("databricks://prod", "1", "P", "val_auc", "max") == []
    assert ui_server("/srv/medtune/mlruns").serve_command == "mlflow ui --backend-store-uri /srv/medtune/mlruns"
    spaced = ui_server("sqlite:////srv/a b/mlruns.db").serve_command
    assert spaced == "mlflow ui --backend-store-uri 'sqlite:////srv/a b/mlruns.db'"


# --- the links in MLflow's UI ----------------------------------------------------------------------


def _wait_for_rows(page: Any, expected: list[str]) -> list[str]:
    """The run ids of the runs table's rows, top to bottom, once they are ``expected`` (or at the timeout)."""
    rows = ".ag-pinned-left-cols-container .ag-row"
    read = f"() => [...document.querySelectorAll('{rows}')].sort((a, b) => a.getAttribute('row-index') - " \
           "b.getAttribute('row-index')).map(r => r.getAttribute('row-id'))"
    try:
        page.wait_for_function(f"expected => JSON.stringify(({read})()) === JSON.stringify(expected)", arg=expected,
                               timeout=WAIT_MS)
    except Exception:  # the assertion below shows what the table holds instead
        pass
    return page.evaluate(read)


def _assert_model_training_layout(page: Any, experiment_id: str) -> None:
    """The "Model training" side bar (Runs, Models...), not MLflow 3's GenAI one (Overview, Evaluation runs...)."""
    nav = page.locator("aside")
    runs = nav.get_by_role("link", name="Runs", exact=True)
    runs.wait_for()
    assert runs.get_attribute("href") == f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    names = nav.locator("a").all_inner_texts()
    assert "Overview" not in names and "Evaluation runs" not in names, names


def test_the_printed_link_opens_the_sweeps_trials_best_first(served, printed, page):
    store, server = served
    page.goto(_on(_link(printed.sweep, "MLflow UI, this sweep's trials"), server))
    expected = [run_id for run_id, _ in store.ranked]
    assert _wait_for_rows(page, expected) == expected  # only this sweep's trials, by best_val_auc descending
    _assert_model_training_layout(page, store.experiment_id)
    assert page.locator("h2").first.inner_text() == "Runs"  # the runs table's own page, not the GenAI overview
    for run_id, name in store.ranked:
        href = f"#/experiments/{store.experiment_id}/runs/{run_id}"
        link = page.locator(f".ag-pinned-left-cols-container a[href='{href}']")
        assert link.inner_text() == name and link.is_visible()
    assert page.get_by_text(f"{len(expected)} matching runs").is_visible()
    assert page.get_by_text("Sort: best_val_auc").is_visible()
    assert "ui-links-A" not in page.inner_text("body")  # the parent run is no row either
    # MLflow cannot be told by URL which columns to show: the default ones are there, no metric.
    headers = [text.strip() for text in page.locator(".ag-header-cell").all_inner_texts()]
    assert "Run Name" in headers and "best_val_auc" not in headers, headers


def test_the_sweeps_shared_view_adds_the_best_value_column_to_the_printed_link(served, page):
    """What a URL cannot do, MLflow's shared views can: the sweep stores its view (an experiment tag)
    when it ends, and the link it prints then opens the table with best_val_auc as a column."""
    from medtune.cli import _sweep_link_lines
    from medtune.search.spec.loader import load_spec
    from medtune.search.tracking.sweep_run import write_shared_view
    from mlflow import MlflowClient

    store, server = served
    uri = f"sqlite:///{store.db}"
    spec = load_spec(REPO / "spaces" / "demo.yaml", [f"mlflow.tracking_uri={uri}"])
    route = write_shared_view(MlflowClient(uri), store.experiment_id, store.parent_run_id, spec)
    assert route is not None and "viewStateShareKey=" in route
    printed = _link(_sweep_link_lines(SimpleNamespace(spec=spec, experiment_id=store.experiment_id,
                                                      parent_run_id=store.parent_run_id, view_route=route)),
                    "MLflow UI, this sweep's trials by best val_auc")
    assert printed.endswith(route)
    page.goto(_on(printed, server))
    expected = [run_id for run_id, _ in store.ranked]
    assert _wait_for_rows(page, expected) == expected
    column = page.locator(".ag-header-cell", has_text="best_val_auc")
    column.wait_for()
    col_id = column.get_attribute("col-id")
    cells = page.locator(f".ag-center-cols-container .ag-row .ag-cell[col-id='{col_id}']")
    values = sorted(TRIAL_VALUES, reverse=True)
    assert [float(v) for v in cells.all_inner_texts()] == values


def _open_from_note(page: Any, link: Any) -> Any:
    """Click a link of a run's note: MLflow opens note links in a new tab, which is returned (still loading)."""
    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.set_default_timeout(WAIT_MS)
    return tab


def _assert_artifact_shown(tab: Any, path: str) -> None:
    """The artifact view with ``path`` selected (its title) and its content drawn."""
    tab.get_by_text(path, exact=True).first.wait_for()
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".png"):
        image = tab.locator("img[src^='blob:']").first
        image.wait_for()
        tab.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        assert image.evaluate("img => img.naturalWidth") == PNG_WIDTHS[name]  # this image, not another one
    elif name.endswith(".html"):
        tab.locator("iframe").wait_for()
        deadline = time.monotonic() + 30  # the iframe appears before MLflow gives it the blob's URL
        while not any(f.url.startswith("blob:") for f in tab.frames):
            assert time.monotonic() < deadline, [f.url for f in tab.frames]
            tab.wait_for_timeout(100)
        frame = next(f for f in tab.frames if f.url.startswith("blob:"))
        frame.wait_for_selector("h1")
        assert frame.inner_text("h1") == "Final test report: ui-links"
    else:
        expected = {"best_config.yaml": "architecture: mobilenetv2_100", "leaderboard.csv": "A0004"}[name]
        tab.get_by_text(expected).first.wait_for()


def test_every_link_of_the_sweep_note_lands_on_its_run_table_run_or_artifact(served, page):
    from medtune.search.tracking.ui_links import sweep_runs_route

    store, server = served
    e = store.experiment_id
    page.goto(f"{server}/#/experiments/{e}/runs/{store.parent_run_id}")
    note = page.locator(".note-editor-preview-content")
    note.wait_for()
    page.locator("button", has_text="Show more").click()  # MLflow folds a long note
    hrefs = note.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    best_run = store.ranked[0][0]
    artifacts = {f"#/experiments/{e}/runs/{store.parent_run_id}/artifacts/{p}": p for p in store.artifacts}
    artifacts[f"#/experiments/{e}/runs/{store.final_run_id}/artifacts/report/report.html"] = "report/report.html"
    runs = {f"#/experiments/{e}/runs/{best_run}": store.ranked[0][1],
            f"#/experiments/{e}/runs/{store.final_run_id}": store.final_run_name}
    table = sweep_runs_route(e, store.parent_run_id, "val_auc", "max")
    assert sorted(hrefs) == sorted([table, *artifacts, *runs])
    tabs = {href: _open_from_note(page, note.locator(f"a[href='{href}']")) for href in hrefs}  # they load meanwhile
    for href, tab in tabs.items():
        if href == table:
            expected = [run_id for run_id, _ in store.ranked]
            assert _wait_for_rows(tab, expected) == expected
        elif href in runs:
            tab.locator("h2", has_text=runs[href]).wait_for()
            assert tab.locator("h2").first.inner_text() == runs[href]
            tab.get_by_text("About this run").wait_for()
        else:
            assert tab.url.endswith(href)
            tab.get_by_role("tab", name="Artifacts").wait_for()
            _assert_artifact_shown(tab, artifacts[href])
        tab.close()


def test_the_links_printed_by_final_open_its_report_and_its_run_whose_note_links_back(served, printed, page):
    store, server = served
    page.goto(_on(_link(printed.final, "MLflow UI, the final run's test report"), server))
    _assert_artifact_shown(page, "report/report.html")
    page.goto("about:blank")  # the artifact view reads its path when it opens: a fresh page
    page.goto(_on(_link(printed.final, "the final run:"), server))
    page.locator("h2", has_text=store.final_run_name).wait_for()
    note = page.locator(".note-editor-preview-content")
    note.wait_for()
    tab = _open_from_note(page, note.get_by_role("link", name=store.run_name))
    tab.locator("h2", has_text=store.run_name).wait_for()
    tab.get_by_text("Best trial").wait_for()  # the sweep's own note
    tab.close()
    tab = _open_from_note(page, note.get_by_role("link", name="report.html"))
    _assert_artifact_shown(tab, "report/report.html")
    tab.close()
