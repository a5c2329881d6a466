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
    for name in ("MEDTUNE_DATA_DIR", "MEDTUNE_WEIGHTS_DIR", "MEDTUNE_CACHE_DIR"):
        # The README's relative paths (../shared/data) must still hold in subprocesses run elsewhere.
        os.environ[name] = str(Path(os.environ[name]).resolve())


class S3Server:
    """A moto S3 server process on 127.0.0.1 with fake credentials, for tests about S3."""

    access_key = "MEDTUNETESTACCESSKEY"
    secret_key = "medtune-test-secret-key-never-logged"

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        # Standard variables: boto3, pyarrow (Ray's storage) and MLflow all read them.
        self.env = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    import subprocess
    import sys
    import time
    import urllib.request

    from helpers import free_port

    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(port)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start on port {port}")
            time.sleep(0.3)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, for the tests about pages (report.html, MLflow's UI)."""
    from helpers import CHROMIUM, CHROMIUM_ARGS, browser_unavailable

    if not CHROMIUM.exists():
        browser_unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("the playwright package is not installed")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()
