"""What ``medtune final`` trained, as plain data: each member's config, model and scores.

``medtune.search.run.final_training`` fills these; the results side (calibration, the test reports,
the output folder, the figures, Grad-CAM) only reads them, so it never needs to know how they trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class FinalMember:
    """One trained model of the final run: its config, the scores that choose the threshold (with
    their labels) and its test scores (two classes: the positive class's probability; more: every
    class's).

    Two classes, once ``final_calibration.calibrate_members`` has run: ``val_scores`` and
    ``test_scores`` are calibrated (every decision is taken on them), ``raw_val_scores`` and
    ``raw_test_scores`` the model's own, and ``calibration`` the map between them."""

    config: dict[str, Any]
    model: Any
    val_scores: np.ndarray
    test_scores: np.ndarray
    val_labels: np.ndarray | None = None
    epochs: int = 0  # the epochs the model trained (its budget on its training set)
    raw_val_scores: np.ndarray | None = None
    raw_test_scores: np.ndarray | None = None
    calibration: Any = None  # a medtune.trainables.calibration.ScoreCalibration

    @property
    def uncalibrated_test_scores(self) -> np.ndarray:
        """The model's own test scores (the same as ``test_scores`` before calibration)."""
        return self.test_scores if self.raw_test_scores is None else self.raw_test_scores


@dataclass
class FinalTraining:
    """The trained members, the splits they trained on (``data.train``) and were tested on
    (``data.test``), where their threshold scores came from, and the wall time it all took."""

    members: list[FinalMember]
    data: Any
    threshold_source: str
    seconds: float
