"""Fixtures of the data-layer tests: each test isolated from the others and from the network, and
the module-wide data that several tests read.

``isolated_data`` is not autouse: the data-layer test modules ask for it (``pytestmark``), while
the other tests in this folder keep the session's data folder.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
from helpers import make_kermany

from medtune.trainables.data import clear_memo, medmnist
from medtune.trainables.data.cache import reset_cache_stats


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """Fresh memo, caches under tmp, and a network that always fails unless a test serves bytes."""
    clear_memo()
    reset_cache_stats()
    monkeypatch.setenv("MEDTUNE_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(tmp_path / "env-data"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("tests never use the network")

    monkeypatch.setattr(medmnist, "_urlopen", offline)
    yield
    clear_memo()


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> Path:
    """One cache dir shared by the real-data tests that do not test caching itself."""
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture(scope="module")
def kermany(tmp_path_factory) -> Path:
    return make_kermany(tmp_path_factory.mktemp("kermany") / "chest_xray")
