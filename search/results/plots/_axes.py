"""The vertical axes of the parallel coordinates: where a value goes (0..1) and which ticks it gets.

Each searched parameter gets the axis its distribution calls for (categories evenly spaced, a
log-uniform range in decades, integers as integers, the rest linear); the objective gets a padded
linear axis. Long names fold at underscores so that labels stay between two axes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from medtune.search.spec.space import Distribution


@dataclass(frozen=True)
class Axis:
    """One vertical axis of the parallel coordinates: where a value goes (0..1) and its ticks."""

    name: str
    scale: Callable[[Any], float]
    ticks: list[tuple[float, str]]


def nice_ticks(low: float, high: float, count: int = 5) -> list[tuple[float, str]]:
    """Round values inside [low, high] (as positions 0..1), with as many decimals as their step needs."""
    from matplotlib.ticker import MaxNLocator

    if high <= low:
        return [(0.5, f"{low:.4g}")]
    candidates = MaxNLocator(count, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    values = [float(v) for v in candidates if low - 1e-12 <= v <= high + 1e-12]
    step = values[1] - values[0] if len(values) > 1 else high - low
    decimals = next((d for d in range(8) if all(abs(round(v, d) - v) < step * 1e-3 for v in values)), 8)
    return [((v - low) / (high - low), f"{v:.{decimals}f}") for v in values]


def linear(low: float, high: float) -> Callable[[Any], float]:
    """[low, high] onto 0..1 (the middle when the range is one value; a missing value is NaN)."""
    def scale(value: Any) -> float:
        if value is None:
            return math.nan
        return 0.5 if high <= low else (float(value) - low) / (high - low)

    return scale


def fold(text: str, width: int = 16) -> str:
    """Long names on two or more lines, broken at underscores (``tf_efficientnet_`` / ``lite0``), so a
    tick label or axis name stays within the gap between two axes."""
    if len(text) <= width:
        return text
    lines, line = [], ""
    for part in re.split(r"(?<=_)", text):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join(lines + [line])


def _choice_axis(name: str, dist: Distribution) -> Axis:
    values = list(dist.values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        values.sort()
    positions = {str(v): (i / (len(values) - 1) if len(values) > 1 else 0.5) for i, v in enumerate(values)}
    return Axis(name, lambda v: positions.get(str(v), math.nan) if v is not None else math.nan,
                [(p, fold(label)) for label, p in positions.items()])


def _log_axis(name: str, low: float, high: float) -> Axis:
    lo, hi = math.log10(low), math.log10(high)
    log_scale = linear(lo, hi)
    decades = range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)
    ticks = [((d - lo) / (hi - lo), f"1e{d}") for d in decades] if hi > lo else []
    if len(ticks) < 2:
        ticks = [(0.0, f"{low:.2g}"), (1.0, f"{high:.2g}")]
    return Axis(f"{name}\n(log)", lambda v: log_scale(math.log10(v)) if v is not None and v > 0 else math.nan,
                ticks)


def _int_axis(name: str, low: int, high: int) -> Axis:
    from matplotlib.ticker import MaxNLocator

    scale = linear(low, high)
    values = range(low, high + 1) if high - low <= 8 else \
        [int(v) for v in MaxNLocator(6, integer=True).tick_values(low, high) if low <= v <= high]
    return Axis(name, scale, [(scale(v), str(v)) for v in values])


def param_axis(name: str, dist: Distribution) -> Axis:
    """The axis of one searched parameter: categories evenly spaced by name, log-uniform values
    on a log scale, integers as integers, the rest linear over the searched range."""
    if dist.kind == "choice":
        return _choice_axis(name, dist)
    low, high = dist.values[0], dist.values[1]
    if dist.kind == "loguniform" or (dist.kind == "int" and dist.log):
        return _log_axis(name, float(low), float(high))
    if dist.kind == "int":
        return _int_axis(name, int(low), int(high))
    return Axis(name, linear(float(low), float(high)), nice_ticks(float(low), float(high)))


def objective_axis(metric: str, values: Sequence[float]) -> Axis:
    """The objective's axis over the finished trials' values, padded so no line sits on its end."""
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.04 or abs(low) * 0.01 or 0.01
    low, high = low - pad, high + pad
    return Axis(f"{metric}\n(objective)", linear(low, high), nice_ticks(low, high, count=6))


def draw_axes(ax: Any, axes: Sequence[Axis]) -> None:
    """Vertical axes with their tick labels on the left, on a white ground so lines never hide them."""
    for x, axis in enumerate(axes):
        ax.axvline(x, color="0.25", linewidth=1, zorder=1)
        for position, label in axis.ticks:
            ax.plot([x - 0.025, x], [position, position], color="0.25", linewidth=1, zorder=5)
            ax.text(x - 0.04, position, label, ha="right", va="center", fontsize=7.5, zorder=6,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.6})
    ax.set_xticks(range(len(axes)), ["\n".join(fold(line) for line in axis.name.splitlines()) for axis in axes],
                  fontsize=9)
    ax.set_xlim(-0.55, len(axes) - 1 + 0.1)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    ax.tick_params(axis="x", length=0)
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
