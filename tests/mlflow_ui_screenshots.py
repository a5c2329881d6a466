"""Remake the docs' MLflow screenshots (docs/mlflow_*.png) from a real sweep and final run.

Not a test (pytest does not collect it): run by hand, on a store that ``medtune sweep``, ``best``
and ``final`` wrote, e.g. the README's short demo::

    cd /tmp/ui-demo && medtune sweep <repo>/spaces/demo.yaml --name demo-sweep \\
        --set search.num_samples=12 --set search.scheduler.unit=epochs --set search.scheduler.max_t=4 \\
        --set search.scheduler.grace_period=1 --set search.cv=null \\
        --set data.train_subset=2000 --set data.val_subset=400
    medtune best pneumonia-demo -o best.yaml && medtune final best.yaml --out final
    <repo>/.venv/bin/python <repo>/tests/mlflow_ui_screenshots.py --store /tmp/ui-demo/mlruns.db --out <repo>/docs

(with MEDTUNE_DATA_DIR and MEDTUNE_WEIGHTS_DIR at ../shared: about 4.5 minutes on 2 busy cores
for the three commands, 30 s for the screenshots).

It serves the store with a real ``mlflow server`` and walks, in headless Chromium by real clicks,
the paths the README promises from the link ``medtune sweep`` prints (each at most 3 clicks):

    mlflow_runs.png              the printed link: the sweep's trials, best first       (0 clicks)
    mlflow_best_trial.png        the first row: the best trial, its hyperparameters     (1)
    mlflow_sweep_note.png        its "Parent run": the sweep, its note                  (2)
    mlflow_learning_curves.png   the note's learning curves, ASHA's stops marked        (3)
    mlflow_importances.png       the note's "which values mattered"                     (3)
    mlflow_final_report.png      the note's final run report.html                       (3)

1280x800 pixels each; MLflow's assistant panel is kept closed, the Run Name column widened so
the names are readable, and the best trial's metrics filtered to the objective so that its
hyperparameters fit on the screen. A PNG over 400 KB is stored with a 256-colour palette.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from helpers import CHROMIUM, CHROMIUM_ARGS, MlflowServer, free_port  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}
MAX_BYTES = 400_000
#: MLflow's assistant panel opens on a first visit and takes a third of the page.
NO_ASSISTANT = ("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');")
WAIT_MS = 60_000


def store_uri(store: str) -> str:
    """A tracking URI from ``--store``: a URI as it is, a path (``mlruns.db``) as a sqlite store."""
    if "://" in store:
        return store
    return f"sqlite:///{Path(store).expanduser().resolve()}"


def newest_sweep(client: Any, parent_run_id: str | None) -> Any:
    """The sweep's parent run: the one given, else the newest finished ``medtune sweep`` in the store."""
    if parent_run_id:
        return client.get_run(parent_run_id)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.`medtune.kind` = 'sweep' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SystemExit("no finished medtune sweep in this store")
    return runs[0]


def save(page: Any, path: Path) -> None:
    page.wait_for_timeout(600)  # let charts and fonts settle after the awaited element
    page.screenshot(path=str(path))
    if path.stat().st_size > MAX_BYTES:
        from PIL import Image

        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1000} KB)")


def widen_run_names(page: Any, by: int = 150) -> None:
    """Drag the Run Name column's edge: names such as ``06 tf_efficientnet_lite0 fd1 stopped@1`` in full."""
    handle = page.locator(".ag-header-cell[col-id='attributes.`Run Name`'] .ag-header-cell-resize")
    handle.hover()  # ag-grid starts a resize only from a hovered handle, and follows gradual moves
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.down()
    for step in range(1, 16):
        page.mouse.move(x + by * step / 15, y)
        page.wait_for_timeout(20)
    page.mouse.up()


def open_from_note(page: Any, text: str) -> Any:
    """Click the note's link named ``text``; MLflow opens note links in a new tab."""
    with page.context.expect_page() as opened:
        page.locator(".note-editor-preview-content a", has_text=text).first.click()
    tab = opened.value
    tab.set_default_timeout(WAIT_MS)
    tab.set_viewport_size(VIEWPORT)
    return tab


def wait_for_image(tab: Any) -> None:
    image = tab.locator("img[src^='blob:']").first
    image.wait_for()
    tab.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())


def take(base: str, experiment_id: str, parent: Any, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from medtune.search.tracking.ui_links import sweep_link_lines

    metric, mode = parent.data.params.get("metric", "val_auc"), parent.data.params.get("mode", "max")
    printed = sweep_link_lines(base, experiment_id, parent.info.run_id, metric, mode)[0]
    link = printed.split(": ", 1)[1]
    print(printed)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(NO_ASSISTANT)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)

        page.goto(link)  # the printed link
        first = page.locator(".ag-pinned-left-cols-container .ag-row[row-index='0'] a").first
        first.wait_for()
        widen_run_names(page)
        save(page, out / "mlflow_runs.png")

        first.click()  # 1: the best trial
        page.get_by_text("About this run").wait_for()
        # Its hyperparameters sit below 15 metrics: keep the objective's, so both show on one screen.
        page.get_by_placeholder("Search metrics").fill(metric)
        page.get_by_text("Parameters", exact=False).first.wait_for()
        save(page, out / "mlflow_best_trial.png")

        page.get_by_role("link", name=parent.info.run_name, exact=True).click()  # 2: its parent run, the sweep
        note = page.locator(".note-editor-preview-content")
        note.wait_for()
        more = page.locator("button", has_text="Show more")
        if more.count():
            more.click()
        page.locator("h4", has_text="Description").evaluate("h => h.scrollIntoView({block: 'start'})")
        save(page, out / "mlflow_sweep_note.png")

        for text, name in (("plots/learning_curves.png", "mlflow_learning_curves.png"),
                           ("plots/param_importances.png", "mlflow_importances.png")):
            tab = open_from_note(page, text)  # 3
            wait_for_image(tab)
            save(tab, out / name)
            tab.close()

        tab = open_from_note(page, "report.html")  # 3: the final run's report, listed under "Final runs"
        tab.locator("iframe").wait_for()
        frame = next(f for f in tab.frames if f.url.startswith("blob:"))
        frame.wait_for_selector("h1")
        # Past the page's header to its test metrics and their intervals (the page scrolls in its frame).
        frame.locator("h2").first.evaluate("h => h.scrollIntoView({block: 'start'})")
        save(tab, out / "mlflow_final_report.png")
        tab.close()
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="the store medtune wrote: mlruns.db, or a tracking URI")
    parser.add_argument("--out", default=str(HERE.parent / "docs"), help="folder for the PNGs (default: docs/)")
    parser.add_argument("--sweep", help="the sweep's parent run id (default: the newest finished sweep)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    uri = store_uri(args.store)
    parent = newest_sweep(MlflowClient(uri), args.sweep)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if uri.startswith(("http://", "https://")):  # a tracking server: its own UI
        take(uri.rstrip("/"), parent.info.experiment_id, parent, out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        server = MlflowServer(Path(tmp), free_port(), uri, str(Path(tmp) / "artifacts"),
                              {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}).start()
        try:
            take(server.uri, parent.info.experiment_id, parent, out)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
