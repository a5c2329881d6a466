"""Screenshots for the README of two things a user sees outside MLflow: the Optuna dashboard on a
sweep's journal, and the Python API's leaderboard as a notebook shows it. Run by hand (not a
test; pytest does not collect it), with Debian's Chromium:

    python tests/ecosystem_screenshots.py --run RAY_RUN_FOLDER --tracking-uri URI --experiment NAME --out docs/

RAY_RUN_FOLDER is a finished sweep's ``<storage>/<run name>`` (it holds ``optuna.journal``); the
experiment and tracking URI are where that sweep logged.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402


def dashboard(run: Path, out: Path, browser) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "optuna.journal"
        shutil.copy(run / "optuna.journal", journal)  # read a copy: the dashboard may take its lock
        port = free_port()
        server = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"), str(journal),
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            studies = None
            for _ in range(100):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=1) as response:
                        studies = json.load(response)["study_summaries"]
                    break
                except OSError:
                    time.sleep(0.2)
            study_id = studies[0]["study_id"]
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/dashboard/studies/{study_id}")
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(2500)  # plotly draws after the data arrives
            path = out / "optuna_dashboard.png"
            page.screenshot(path=str(path))
            page.close()
            return path
        finally:
            server.terminate()
            server.wait(timeout=10)


def api_leaderboard(tracking_uri: str, experiment: str, out: Path, browser) -> Path:
    """What ``medtune.sweep(...).leaderboard_frame()`` shows in a notebook: the same table as the
    sweep's ``leaderboard.csv``, read here from its MLflow parent run."""
    import pandas as pd

    import medtune
    import mlflow

    found = medtune.best(experiment, tracking_uri, output=None)
    parent = found.document["provenance"]["parent_run_id"]
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=parent, artifact_path="leaderboard.csv", dst_path=tmp,
                                                    tracking_uri=tracking_uri)
        frame = pd.read_csv(local).set_index("rank").drop(columns=["error"])
    code = ('import medtune\n\nsweep = medtune.sweep("spaces/demo.yaml", overrides={"search.num_samples": 10})\n'
            "sweep.leaderboard_frame()")
    page_html = f"""<html><head><style>
body {{ font-family: system-ui, sans-serif; margin: 24px; }}
pre {{ background: #f6f8fa; padding: 12px; border-left: 3px solid #1f77b4; font-size: 14px; }}
table {{ border-collapse: collapse; font-size: 12px; }} th, td {{ padding: 3px 8px; text-align: right; }}
tr:nth-child(even) {{ background: #f5f5f5; }} th {{ border-bottom: 1px solid #999; }}
.prompt {{ color: #888; font-family: monospace; font-size: 12px; }}
</style></head><body><div class="prompt">In [1]:</div><pre>{html.escape(code)}</pre>
<div class="prompt">Out[1]:</div>{frame.to_html(float_format=lambda v: f"{v:.4g}")}</body></html>"""
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "api.html"
        page_file.write_text(page_html)
        page = browser.new_page(viewport={"width": 1280, "height": 600})
        page.goto(page_file.as_uri())
        path = out / "api.png"
        page.screenshot(path=str(path), full_page=True)
        page.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="the sweep's Ray run folder (optuna.journal)")
    parser.add_argument("--tracking-uri", required=True, help="where the sweep logged, e.g. sqlite:///mlruns.db")
    parser.add_argument("--experiment", required=True, help="the sweep's experiment (its name)")
    parser.add_argument("--out", default=Path("docs"), type=Path)
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            print(dashboard(args.run, args.out, browser))
            print(api_leaderboard(args.tracking_uri, args.experiment, args.out, browser))
        finally:
            browser.close()


if __name__ == "__main__":
    main()
