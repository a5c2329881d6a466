"""Percentile bootstrap intervals of test metrics: the test images resampled with replacement, seeded.

Both final reports (``binary_report``, ``multiclass_report``) give every metric a 95% interval
this way, so two models' reports can be compared honestly. Hand-written rather than
``scipy.stats.bootstrap``, which computes one statistic per call and keeps resamples where a metric
is undefined (a resample without positives has no sensitivity): here one pass of resamples serves
every metric, and undefined draws are left out of that metric's interval.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from medtune.trainables.progress import progress

BOOTSTRAP_SAMPLES = 1000
CI_LEVEL = 0.95


def percentile_bootstrap(metrics: Callable[[np.ndarray], dict[str, float]], n: int, samples: int = BOOTSTRAP_SAMPLES,
                         seed: int = 0, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each metric ``metrics(idx)`` returns for ``n`` test images
    resampled with replacement (``idx``); draws where a metric is undefined (NaN) are left out."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in progress(range(samples), total=samples, desc="bootstrap CIs", unit="resample"):
        for name, value in metrics(rng.integers(0, n, n)).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    out = {}
    for name, values in draws.items():
        finite = np.array([v for v in values if not math.isnan(v)])
        out[name] = (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))) \
            if len(finite) else (math.nan, math.nan)
    return out
