"""The HTML building blocks of ``report.html``: escaping, number cells, table rows, the page's style.

Every piece of text goes through ``escape`` (configuration values and names come from user-written
space files), every number through ``num_cell`` (which keeps the exact number in ``data-value`` so
tests and readers can compare the page with ``report.json``), and every table row through ``row``,
so the tables of the page are built one way.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Iterable

#: Nothing may load from outside the page; images only from data: URIs, style only inline, no script.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
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
.scroll { max-width: 100%; overflow-x: auto; }  /* a wide table scrolls inside its report */
.columns { display: flex; flex-wrap: wrap; gap: 0 24px; align-items: flex-start; }
code { font-family: ui-monospace, monospace; background: #f6f8fa; padding: 1px 4px; border-radius: 3px;
       overflow-wrap: anywhere; }
.config td { font-family: ui-monospace, monospace; font-size: 0.9em; overflow-wrap: anywhere; }
"""


def escape(value: Any) -> str:
    """Text for the page: every value goes through here, quotes included (it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def format_number(value: Any) -> str:
    """How the page shows a metric: 4 decimals, ``n/a`` for a missing or undefined (NaN) value."""
    if value is None:
        return "n/a"
    number = float(value)
    return f"{number:.4f}" if math.isfinite(number) else "n/a"


def num_cell(value: Any, **data: str) -> str:
    """A number cell whose ``data-value`` is the exact number (``repr``) the JSON holds."""
    attrs = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in data.items())
    raw = "" if value is None else repr(float(value))
    return f'<td class="num"{attrs} data-value="{escape(raw)}">{escape(format_number(value))}</td>'


def count_cell(value: Any, confusion: str) -> str:
    """A confusion-matrix count, keyed by ``data-confusion`` (``report:cell``)."""
    return f'<td class="num" data-confusion="{confusion}">{int(value)}</td>'


def row(head: Any, cells: Iterable[str]) -> str:
    """A table row: its (escaped) heading, then the cells, already HTML."""
    return f"<tr><th>{escape(head)}</th>{''.join(cells)}</tr>"


def header(*titles: Any) -> str:
    """A table's heading row."""
    return "<tr>" + "".join(f"<th>{escape(t)}</th>" for t in titles) + "</tr>"


def table(rows: Iterable[str], css_class: str | None = None) -> str:
    opening = f'<table class="{css_class}">' if css_class else "<table>"
    return opening + "".join(rows) + "</table>"


def image_tag(path: Path, alt: str) -> str:
    """The image at ``path`` inline, as a ``data:`` URI."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{escape(alt)}">'
