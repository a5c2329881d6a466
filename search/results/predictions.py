"""What ``medtune predict`` hands back: one row per image, and the CSV of it, written whole or not at all.

Rows: the image's ``path`` (relative to the input folder, or the file as given) or ``index`` (in an
``.npz``, with the file's own ``label`` beside it when it has labels), every class's probability
(``prob_<class>``), ``predicted_class``, and for a two-class model at a threshold the calibrated
``score``, the ``threshold`` and the ``decision`` (1: the positive class). Images that could not be
read have no row; they are listed in ``bad`` with the reason.

The CSV is written to a temporary file beside its destination and renamed into place, so a
reader never sees half a file and a failed run leaves the previous file as it was.

Light on purpose (no torch): ``import medtune`` exports ``PredictOutcome``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medtune.trainables.inference import Predictions


@dataclass
class PredictOutcome:
    """The predictions of a model on a set of images.

    ``keys`` name each row (``key_name`` is ``path`` or ``index``); ``labels`` are an ``.npz``'s own
    labels when it has them; ``bad`` lists (image, reason) of the unreadable ones out of ``total``;
    ``out`` is the CSV written (None when none was asked for); ``model`` describes the model and
    ``rule``/``threshold`` how it decided."""

    predictions: "Predictions"
    keys: list[str]
    key_name: str
    total: int
    model: str
    labels: list[Any] | None = None
    bad: list[tuple[str, str]] = field(default_factory=list)
    out: Path | None = None
    gradcam_dir: Path | None = None

    @property
    def rule(self) -> str:
        return self.predictions.rule.rule

    @property
    def threshold(self) -> float | None:
        return self.predictions.threshold

    def columns(self) -> dict[str, list[Any]]:
        """Column name -> values, in the CSV's order."""
        out: dict[str, list[Any]] = {self.key_name: list(self.keys)}
        if self.labels is not None:
            out["label"] = list(self.labels)
        out.update({name: list(values) for name, values in self.predictions.columns().items()})
        return out

    def frame(self) -> Any:
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.columns())

    def write_csv(self, path: str | Path) -> Path:
        """Write the rows to ``path`` through a temporary file renamed into place."""
        path = Path(path)
        columns = self.columns()
        tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(list(columns))
                for row in zip(*columns.values()):
                    writer.writerow([_text(v) for v in row])
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.out = path
        return path


def _text(value: Any) -> str:
    """A float at full precision (``repr``), as ``test_predictions.csv`` writes them; else ``str``."""
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        return repr(float(value))
    return str(value)
