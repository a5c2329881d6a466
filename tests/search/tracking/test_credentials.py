"""Credentials in URIs and the environment are used, and written, printed or pickled nowhere.

The end-to-end test puts an authenticating proxy (HTTP Basic, loopback only) in front of a real
``mlflow server``: a request without the sentinel password gets 401, so a sweep, ``medtune best``,
``medtune resume`` and ``medtune final`` that finish prove the password reached the server. Then
every file they wrote (run folder, Tune's state, the server's store and artifacts, best configs,
final's report) and Ray's own session folder and logs, plus everything printed, are searched for
the sentinel password and for a sentinel ``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

import base64
import http.client
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import EPOCH_BUDGET_2, REPO, MlflowServer, free_port, subprocess_env

from medtune.search.credentials import (
    has_userinfo,
    redact_document,
    redact_text,
    redact_uri,
    tracking_uri_for_mlflow,
    uri_credentials_problem,
    with_credentials_from_environment,
)
from medtune.search.spec.sweep_spec import SpecError, validate_spec

PASSWORD = "sentinel-pw-4f2a9"
AWS_SECRET = "sentinel-aws-9c1e7"


# ------------------------------------------------------------------ the redaction rules


@pytest.mark.parametrize("uri, expected", [
    ("http://user:pw@host:5000/x", "http://host:5000/x"),
    ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://db:5432/mlflow"),
    ("s3://key:secret@bucket/prefix", "s3://bucket/prefix"),
    ("sqlite:////abs/mlruns.db", "sqlite:////abs/mlruns.db"),
    ("http://host/path@not-userinfo", "http://host/path@not-userinfo"),
])
def test_redact_uri_drops_the_user_info_only(uri, expected):
    assert redact_uri(uri) == expected
    assert has_userinfo(uri) == (uri != expected)


def test_redact_text_and_documents_cover_every_uri_in_them():
    text = "could not reach http://a:pw1@h1/x, then s3://k:pw2@bucket"
    assert "pw1" not in redact_text(text) and "pw2" not in redact_text(text)
    doc = {"mlflow": {"tracking_uri": "http://u:pw3@h"}, "notes": ["postgresql://u:pw4@db/x"], "n": 3}
    redacted = redact_document(doc)
    assert "pw3" not in str(redacted) and "pw4" not in str(redacted) and redacted["n"] == 3
    assert doc["mlflow"]["tracking_uri"] == "http://u:pw3@h"  # the original is untouched


def test_a_written_tracking_uri_gets_its_password_back_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://u:pw@host:5000")
    assert with_credentials_from_environment("http://host:5000") == "http://u:pw@host:5000"
    assert with_credentials_from_environment("http://other:5000") == "http://other:5000"
    raw = {"name": "x", "data": {"source": "pneumoniamnist"}, "mlflow": {"tracking_uri": "http://host:5000"}}
    assert validate_spec(raw, source="best.yaml").mlflow.tracking_uri == "http://u:pw@host:5000"


def test_a_servers_user_info_moves_into_mlflows_own_credential_variables(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert tracking_uri_for_mlflow("https://me:p%40ss@mlflow.example:443/") == "https://mlflow.example:443/"
    import os

    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("me", "p@ss")
    assert tracking_uri_for_mlflow("postgresql://u:pw@db/x") == "postgresql://u:pw@db/x"  # the driver needs it


@pytest.mark.parametrize("key, value", [("storage", "s3://AKIA:topsecret@bucket/sweeps"),
                                        ("data.source", "s3://AKIA:topsecret@bucket/chest_xray/")])
def test_credentials_in_storage_or_data_uris_are_refused_without_echoing_them(key, value):
    raw = {"name": "x", "data": {"source": "pneumoniamnist"}}
    section, _, leaf = key.rpartition(".")
    (raw[section] if section else raw)[leaf] = value
    with pytest.raises(SpecError) as err:
        validate_spec(raw, source="space.yaml")
    assert [path for path, _ in err.value.problems] == [key]
    assert "topsecret" not in str(err.value) and "AWS_SECRET_ACCESS_KEY" in str(err.value)
    assert uri_credentials_problem("s3://bucket/x") is None


# ------------------------------------------------------------------ a real sweep behind an auth proxy


class _AuthProxy(BaseHTTPRequestHandler):
    """Forwards to the MLflow server only requests that carry the expected Basic credentials."""

    upstream_port: int = 0
    expected = "Basic " + base64.b64encode(f"medtune:{PASSWORD}".encode()).decode()
    refused = 0

    def _forward(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            type(self).refused += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host", "connection")}
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        upstream.request(self.command, self.path, body=body, headers=headers)
        reply = upstream.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def authenticated_server(tmp_path):
    server = MlflowServer(tmp_path, free_port(), f"sqlite:///{tmp_path}/server.db",
                          str(tmp_path / "server-artifacts")).start()
    handler = type("Proxy", (_AuthProxy,), {"upstream_port": server.port, "refused": 0})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{proxy.server_address[1]}", handler
    finally:
        proxy.shutdown()
        server.stop()


@pytest.mark.slow
def test_no_secret_is_written_printed_or_logged_anywhere(tmp_path, authenticated_server):
    address, proxy = authenticated_server
    uri = f"http://medtune:{PASSWORD}@{address}"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = subprocess_env(AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_ACCESS_KEY_ID="medtune-test-key",
                         RAY_TMPDIR=str(ray_tmp))
    env.pop("MLFLOW_TRACKING_URI", None)
    outputs: list[str] = []

    def medtune(*args: str, **extra_env: str) -> None:
        done = subprocess.run([sys.executable, "-m", "medtune", *args], cwd=tmp_path, env={**env, **extra_env},
                              capture_output=True, text=True, timeout=480)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, outputs[-1][-4000:]

    try:
        overrides = ["name=secrets-test", "search.num_samples=2", *EPOCH_BUDGET_2, "data.train_subset=300",
                     "data.val_subset=120", "space.architecture={choice: [simple_cnn]}", "fixed.pretrained=none",
                     f"mlflow.tracking_uri={uri}", f"storage={tmp_path / 'ray_results'}"]
        medtune("sweep", str(REPO / "spaces" / "demo.yaml"), "--name", "secrets", "-o", "best.yaml",
                *[arg for item in overrides for arg in ("--set", item)])
        # Later processes read URIs medtune wrote without the password; the environment gives it back.
        medtune("resume", str(tmp_path / "ray_results" / "secrets"), MLFLOW_TRACKING_URI=uri)
        medtune("best", "secrets-test", "--tracking-uri", uri, "-o", "best-from-mlflow.yaml")
        medtune("final", "best.yaml", "--out", "final", MLFLOW_TRACKING_URI=uri)

        assert proxy.refused == 0, "a request reached the server without the password"
        assert "127.0.0.1" in (tmp_path / "best.yaml").read_text()  # the URI is kept, its user info is not
        leaks = [str(path) for folder in (tmp_path, ray_tmp) for path in folder.rglob("*")
                 if path.is_file() and not path.is_symlink() and _contains(path, (PASSWORD, AWS_SECRET))]
        assert leaks == []
        for output in outputs:
            assert PASSWORD not in output and AWS_SECRET not in output, output[-3000:]
        assert any("MLflow: http://127.0.0.1" in output for output in outputs)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _contains(path: Path, secrets: tuple[str, ...]) -> bool:
    try:
        data = path.read_bytes()
    except OSError:  # a socket or a file a process removed meanwhile
        return False
    return any(secret.encode() in data for secret in secrets)
