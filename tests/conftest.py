"""Shared test setup: real data and weights from ../shared, no network, no writes to $HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MEDTUNE_SHARED_DIR", REPO.parent / "shared")).resolve()
os.environ.setdefault("MEDTUNE_SHARED_DIR", str(SHARED))

# Before anything imports timm/huggingface_hub/mlflow/ray: never reach the network, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def pneumoniamnist_path() -> Path:
    path = SHARED / "data" / "pneumoniamnist.npz"
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set MEDTUNE_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return SHARED / "weights"


@pytest.fixture(scope="session", autouse=True)
def _medtune_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point medtune's data, weights and cache folders at the shared files and a temp cache."""
    os.environ.setdefault("MEDTUNE_DATA_DIR", str(SHARED / "data"))
    os.environ.setdefault("MEDTUNE_WEIGHTS_DIR", str(SHARED / "weights"))
    os.environ.setdefault("MEDTUNE_CACHE_DIR", str(tmp_path_factory.mktemp("medtune-cache")))
