"""A page opened in the test browser, and the checks that ``report.html`` shows ``report.json``.

Shared by ``tests/search/results/test_report_html.py`` (pages built without training) and the e2e
sweep's real final run (``tests/search/run/test_sweep_e2e.py``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class OpenedPage:
    """A page opened from disk, with every request and console error it made recorded."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def close(self) -> None:
        self.page.close()


def _same_number(shown: str, expected: Any) -> bool:
    value = float(shown)
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return math.isnan(value)
    return abs(value - float(expected)) <= 1e-12


def _four_decimals(value: Any) -> str:
    return f"{float(value):.4f}" if value is not None and math.isfinite(float(value)) else "n/a"


def assert_self_contained(opened: OpenedPage) -> None:
    outside = [url for url in opened.requests if not url.startswith(("file://", "data:"))]
    assert not outside, f"the page requested {outside}"
    assert not opened.console_errors, opened.console_errors  # a blocked load shows up here too


def assert_images_drawn(opened: OpenedPage, expected: int) -> None:
    images = opened.page.evaluate(
        "Array.from(document.images).map(i => ({src: i.src.slice(0, 22), complete: i.complete, w: i.naturalWidth}))")
    assert len(images) == expected, images
    for image in images:
        assert image["src"] == "data:image/png;base64," and image["complete"] and image["w"] > 0, image


def assert_numbers_match_report_json(opened: OpenedPage, summary: dict[str, Any]) -> None:
    """Every metric, interval, threshold and confusion count on the page is report.json's number."""
    cells = opened.page.evaluate("""Array.from(document.querySelectorAll('[data-metric], [data-ci], [data-threshold]'))
        .map(c => ({metric: c.dataset.metric, ci: c.dataset.ci, threshold: c.dataset.threshold,
                    value: c.dataset.value, text: c.textContent}))""")
    expected: dict[tuple[str, str], Any] = {}
    for i, report in enumerate(summary["reports"]):
        expected[("threshold", str(i))] = report["threshold"]
        for name, entry in report["metrics"].items():
            expected[("metric", f"{i}:{name}")] = entry["value"]
            expected[("ci", f"{i}:{name}:low")], expected[("ci", f"{i}:{name}:high")] = entry["ci95"]
    shown = {}
    for cell in cells:
        kind = next(k for k in ("metric", "ci", "threshold") if cell[k] is not None)
        shown[(kind, cell[kind])] = cell
    assert set(shown) == set(expected)
    assert len(cells) == len(expected)  # no value shown twice under one key
    for key, value in expected.items():
        cell = shown[key]
        assert _same_number(cell["value"], value), (key, cell, value)
        assert cell["text"] == _four_decimals(value), (key, cell, value)
    counts = opened.page.evaluate("""Object.fromEntries(Array.from(document.querySelectorAll('[data-confusion]'))
        .map(c => [c.dataset.confusion, c.textContent]))""")
    assert counts == {f"{i}:{k}": str(v) for i, r in enumerate(summary["reports"])
                      for k, v in r["confusion_matrix"].items()}
    brier = opened.page.locator("[data-brier]")
    assert _same_number(brier.get_attribute("data-value"), summary["calibration"]["brier"])
    assert brier.inner_text() == _four_decimals(summary["calibration"]["brier"])
