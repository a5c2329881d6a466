"""What every plot of a sweep shares: matplotlib without a display, one colour per architecture,
the legends' trial labels, wrapped titles, the figure size and how a figure is saved.

An architecture gets the same colour in every plot (``architecture_colours`` over
``known_architectures``), so a reader can follow one architecture from the learning curves to the
parallel coordinates.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from medtune.search.spec.sweep_spec import SweepSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: A qualitative palette: architectures are categories, not a scale.
PALETTE = "tab10"
#: Characters per title line: the titles are wrapped to fit the axes next to the legend.
TITLE_WIDTH = 78
DPI = 100
FIGSIZE = (10, 5.2)
#: What the study's ASHA-stopped trials look like in every plot.
STOPPED_GREY = "0.55"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (a sweep runs without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def architecture_colours(architectures: Iterable[str]) -> dict[str, str]:
    """A colour (hex) per architecture, from a fixed qualitative palette, in first-seen order.

    The same list gives the same colours, so every plot of a sweep builds it from ``known_architectures``
    and an architecture keeps its colour from the learning curves to the parallel coordinates.
    Past ten architectures the palette repeats (tab20 would pair near-identical shades instead).
    """
    import matplotlib
    from matplotlib.colors import to_hex

    palette = [to_hex(c) for c in matplotlib.colormaps[PALETTE].colors]
    names = list(dict.fromkeys(architectures))
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def known_architectures(spec: SweepSpec, seen: Iterable[str] = ()) -> list[str]:
    """The spec's architectures sorted, then any a trial had that the spec does not name (sorted).

    The spec's list comes first so that what one plot happens to see never shifts another plot's
    colours: every plot of one sweep gets the same mapping.
    """
    listed = sorted(spec.architectures)
    return listed + sorted(set(seen) - set(listed))


def default_architecture(spec: SweepSpec) -> str:
    """The architecture of a trial that does not say (the spec's only one, when it has one)."""
    architectures = spec.architectures
    return architectures[0] if len(architectures) == 1 else "unknown"


def wrap(text: str, width: int = TITLE_WIDTH) -> str:
    """Wrap each line of a title: matplotlib clips a long title rather than wrapping it."""
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def stopped_label(spec: SweepSpec) -> str:
    """What stopped a trial early in this sweep (``stopped_early`` cannot tell ASHA from the time limit)."""
    causes = (["ASHA"] if spec.search.scheduler.name == "asha" else []) + \
             (["the time limit"] if spec.search.time_budget_s else [])
    return f"stopped by {' or '.join(causes)}" if causes else "stopped early"


def trial_label(number: int, architecture: str, digits: int = 2) -> str:
    """A trial as the legends name it: ``07 mobilenetv2_100`` (its Optuna trial number)."""
    return f"{number:0{digits}d} {architecture}"


def number_digits(numbers: Iterable[int]) -> int:
    """Digits for every trial number of a legend (at least two: ``07``)."""
    return max([2, *(len(str(n)) for n in numbers)])


def save(fig: "Figure", path: Path) -> Path:
    """Write ``fig`` as a PNG and close it (a sweep draws many figures in one process)."""
    plt = pyplot()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
