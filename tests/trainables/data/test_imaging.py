"""Resampling: the real PneumoniaMNIST split resized to 64 px keeps its brightness and labels."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import needs_real_data, real_cfg

from medtune.trainables.data import load_splits

pytestmark = pytest.mark.usefixtures("isolated_data")


@needs_real_data
def test_pneumoniamnist_resized_64(real_cache):
    splits = load_splits(real_cfg(real_cache, image_size=64))
    assert splits.train.images.shape == (4708, 64, 64, 1)
    assert splits.test.images.shape == (624, 64, 64, 1)
    assert splits.train.images.dtype == np.uint8
    native = load_splits(real_cfg(real_cache))
    # Resampling keeps overall brightness; labels untouched.
    assert abs(float(splits.train.images[:200].mean()) - float(native.train.images[:200].mean())) < 2.0
    assert np.array_equal(splits.train.labels, native.train.labels)
