"""``report.html`` opened in a real headless Chromium: self-contained, the same numbers as
``report.json``, every image drawn, text escaped rather than run, and the MLflow run findable.

The report folder is built without training: real ``TestReport`` objects from synthetic scores,
written by the final run's own ``write_artifacts`` (report.json, plots, calibration). One test
runs a short ``medtune final`` end to end, MLflow included, and reads the page it logged.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from report_page import OpenedPage, assert_images_drawn, assert_numbers_match_report_json, assert_self_contained

#: A real headless browser opens each page: out of the fast loop.
pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[3] / "spaces" / "demo.yaml"
HOSTILE_TITLE = "Final <script>window.__pwned = 1</script> & \"co\""
HOSTILE_VALUE = "<script>window.__pwned = 2</script><img src=x onerror=\"window.__pwned = 3\">"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"




@pytest.fixture
def open_page(browser):
    opened: list[OpenedPage] = []

    def _open(path: Path) -> OpenedPage:
        opened.append(OpenedPage(browser, path))
        return opened[-1]

    yield _open
    for page in opened:
        page.close()


# --- a report folder built without training --------------------------------------------------------


def _scores(rng: np.random.Generator, labels: np.ndarray, separation: float) -> np.ndarray:
    """Probabilities of the positive class: logits drawn around -s/2 and +s/2 by class."""
    logits = rng.normal(loc=np.where(labels == 1, separation / 2, -separation / 2), scale=1.0)
    return 1.0 / (1.0 + np.exp(-logits))


def build_report_folder(out: Path, title: str = "Final test report: synthetic", *, members: int = 2,
                        config_value: str = "adamw", gradcam: bool = True) -> dict[str, Any]:
    """report.json, report.md, the plots and calibration.png as ``medtune final`` writes them: real
    members' scores (synthetic: 200 held-out, 300 test images) calibrated and reported by the final
    run's own steps, at its default operating point."""
    from medtune.search.results.final_artifacts import write_artifacts
    from medtune.search.results.final_calibration import calibrate_members
    from medtune.search.results.final_members import FinalMember
    from medtune.search.results.final_reports import build_reports

    rng = np.random.default_rng(7)
    val_labels = (rng.random(200) < 0.4).astype(np.int64)
    test_labels = (rng.random(300) < 0.6).astype(np.int64)
    raw_members = [FinalMember(config={"architecture": "simple_cnn", "lr": 10.0 ** -(3 + i), "batch_size": 32,
                                       "optimizer": config_value, "dropout": None, "pretrained": "imagenet"},
                               model=None, val_scores=_scores(rng, val_labels, 2.5 + i), val_labels=val_labels,
                               test_scores=_scores(rng, test_labels, 2.0 + i))
                   for i in range(members)]
    fake_members = calibrate_members(raw_members)
    class_names = ("normal", "pneumonia")
    spec = SimpleNamespace(name=title, provenance={"sweep": "synthetic-sweep", "trial_id": "t0001"},
                           search=SimpleNamespace(scheduler=SimpleNamespace(unit="epochs"), cv=None))
    data = SimpleNamespace(train=SimpleNamespace(labels=np.zeros(1000, dtype=np.int64)),
                           test=SimpleNamespace(labels=test_labels), class_names=class_names)
    reports, source = build_reports(fake_members, data, "auto", "held-out 0.5 of val (200 images)")
    out.mkdir(parents=True, exist_ok=True)
    write_artifacts(out, spec, fake_members, reports, data, n_epochs=3, train_seconds=12.5, threshold_source=source)
    if gradcam:
        _fake_gradcam(out / "gradcam.png")
    return {"summary": json.loads((out / "report.json").read_text()), "members": fake_members,
            "test_labels": test_labels, "reports": reports}


def _fake_gradcam(path: Path) -> None:
    """A stand-in for the Grad-CAM grid (which needs a trained model): any PNG the page must embed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2))
    ax.imshow(np.random.default_rng(0).random((8, 16)), cmap="jet")
    fig.savefig(path, dpi=60)
    plt.close(fig)


def _write_page(out: Path, title: str, run: Any = None) -> Path:
    from medtune.search.results.report_html import write_report_html

    return write_report_html(out, json.loads((out / "report.json").read_text()), title, run)


# --- checks shared by the tests --------------------------------------------------------------------


def assert_png(path: Path, width: int) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    png_width, png_height = struct.unpack(">II", data[16:24])
    assert png_width == width and png_height > 900  # full page: taller than the viewport


# --- tests -----------------------------------------------------------------------------------------


def test_report_json_holds_the_calibration_of_the_best_models_test_scores_before_and_after(tmp_path):
    built = build_report_folder(tmp_path / "final")
    calibration = built["summary"]["calibration"]
    best, labels = built["members"][0], built["test_labels"]
    assert calibration["map"] == best.calibration.to_dict() and calibration["map"]["method"] == "platt"
    for side, scores in (("before", best.raw_test_scores), ("after", best.test_scores)):
        numbers = calibration[side]
        assert numbers["brier"] == pytest.approx(float(np.mean((scores - labels) ** 2)), abs=1e-12), side
        assert sum(b["count"] for b in numbers["bins"]) == len(labels) == calibration["n"]
        gaps = 0.0
        for b in numbers["bins"]:
            inside = (scores >= b["low"]) & ((scores < b["high"]) | (b["high"] == 1.0))
            assert b["count"] == int(inside.sum())
            if b["count"]:
                assert b["fraction_positive"] == pytest.approx(float(labels[inside].mean()))
                gaps += b["count"] * abs(b["mean_score"] - b["fraction_positive"])
        assert numbers["ece"] == pytest.approx(gaps / len(labels)), side
    assert (calibration["brier"], calibration["ece"]) == (calibration["after"]["brier"], calibration["after"]["ece"])
    report = built["summary"]["reports"][0]
    assert report["ece"] == {"before": calibration["before"]["ece"], "after": calibration["after"]["ece"]}
    assert report["brier"]["after"] == pytest.approx(calibration["after"]["brier"])
    assert (tmp_path / "final" / "calibration.png").read_bytes()[:8] == PNG_SIGNATURE


def test_the_page_is_self_contained_and_shows_report_json_exactly(tmp_path, open_page):
    from medtune.search.results.report_html import mlflow_run_ref

    out = tmp_path / "final"
    built = build_report_folder(out)
    run = mlflow_run_ref("https://alice:s3cret@mlflow.example.org:5000/", "7", "0123abcd")
    path = _write_page(out, "Final test report: synthetic", run)
    opened = open_page(path)

    assert_self_contained(opened)
    assert_images_drawn(opened, expected=4)  # ROC, confusion matrix, calibration, Grad-CAM
    assert_numbers_match_report_json(opened, built["summary"])
    link = opened.page.locator("a#mlflow-run")
    assert link.get_attribute("href") == "https://mlflow.example.org:5000/#/experiments/7/runs/0123abcd"
    assert "s3cret" not in path.read_text() and "alice" not in path.read_text()
    text = opened.page.inner_text("body")
    assert "held-out 0.5 of val (200 images)" in text and "ensemble of 2" in text
    config = opened.page.evaluate("""Object.fromEntries(Array.from(document.querySelectorAll('[data-config]'))
        .map(c => [c.dataset.config, c.textContent]))""")
    assert config["0:lr"] == "0.001" and config["1:lr"] == "0.0001" and config["0:dropout"] == "null"
    params = opened.page.evaluate("Array.from(document.querySelectorAll('table.config th:first-child'))"
                                  ".map(th => th.textContent).filter(t => t !== 'parameter')")
    assert params == sorted(built["summary"]["members"][0])

    shot = tmp_path / "report.png"
    opened.page.screenshot(path=str(shot), full_page=True)
    assert_png(shot, width=1200)


def test_hostile_text_is_shown_escaped_not_run(tmp_path, open_page):
    out = tmp_path / "final"
    build_report_folder(out, members=1, config_value=HOSTILE_VALUE, gradcam=False)
    opened = open_page(_write_page(out, HOSTILE_TITLE))

    assert opened.page.evaluate("window.__pwned") is None
    assert opened.page.evaluate("document.querySelectorAll('script').length") == 0
    assert_images_drawn(opened, expected=3)  # the <img> in the value stayed text; no Grad-CAM file, no figure
    assert opened.page.title() == HOSTILE_TITLE
    assert opened.page.inner_text("h1") == HOSTILE_TITLE
    assert opened.page.locator('[data-config="0:optimizer"]').inner_text() == HOSTILE_VALUE
    assert_self_contained(opened)


def test_a_local_store_gets_the_run_id_and_the_mlflow_ui_command(tmp_path, open_page):
    from medtune.search.results.report_html import mlflow_run_ref

    out = tmp_path / "final"
    build_report_folder(out, members=1, gradcam=False)
    opened = open_page(_write_page(out, "Final test report: local",
                                   mlflow_run_ref("sqlite:////srv/mlruns.db", "3", "r42")))
    assert opened.page.locator("a").count() == 0  # nothing to link to
    assert opened.page.locator("#mlflow-run").inner_text() == "r42"
    assert "mlflow ui --backend-store-uri sqlite:////srv/mlruns.db" in opened.page.inner_text("body")
