"""The MLflow client the driver uses, and the checks made before a sweep relies on it.

The HTTP client is told to give up fast (MLflow's own defaults retry for minutes, which would stall
Tune's event loop); the callback's queue does the retrying. A local store's URI is made absolute so
that a resumed driver or a trial elsewhere finds the same store.
"""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from medtune.search.credentials import redact_uri, tracking_uri_for_mlflow
from medtune.search.locations import is_remote
from medtune.search.spec.sweep_spec import SpecError

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The driver's MLflow HTTP client gives up fast (MLflow's defaults retry for minutes and would stall
#: Tune's event loop); medtune's own queue does the retrying. Users' settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def mlflow_client(tracking_uri: str) -> "MlflowClient":
    """The driver's client. MLflow reads its telemetry and HTTP settings when it is first imported,
    so they are set before the import, which is why mlflow is imported here and not at the top."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri_for_mlflow(tracking_uri))


#: Seconds a tracking server gets to answer the reachability check before a sweep starts.
REACHABILITY_TIMEOUT_S = 10


def check_tracking_server(uri: str, where: str, key: str = "mlflow.tracking_uri") -> None:
    """An ``http(s)://`` tracking server must answer its ``/health`` endpoint now.

    MLflow's client retries an unreachable server for minutes with backoff; checked first, a typo
    or a server that is down costs seconds, before data is decoded or Ray starts. The message
    names the URI without its credentials. Other stores (sqlite, files, Databricks) are not probed.
    """
    if not uri.startswith(("http://", "https://")):
        return
    parts = urlsplit(uri)
    health = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1],
                                       path=parts.path.rstrip("/") + "/health", query="", fragment=""))
    request = urllib.request.Request(health)
    user = parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = parts.password or os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:  # the same Basic credentials MLflow's client will send
        token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=REACHABILITY_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered: a proxy or an auth layer in front of /health is still a live server
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SpecError(where, [(key, f"the MLflow tracking server at {redact_uri(uri)} does not answer ({reason}); "
                                      "start it, fix the URI, or set mlflow.enabled: false")]) from None


def resolved_tracking_uri(uri: str) -> str:
    """A local store's URI made absolute, so a resumed driver (or a trial) elsewhere finds the same store.

    ``sqlite:///mlruns.db`` is relative to the current directory; servers (``http://``) and
    absolute paths are returned unchanged.
    """
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())
    if not is_remote(uri):
        return str(Path(uri).expanduser().resolve())
    return uri


def ensure_experiment(client: "MlflowClient", name: str, artifact_location: str | None) -> str:
    """The experiment's id, creating it with an explicit artifact root (sqlite would default to ./mlruns).

    Against a tracking server (``http(s)://``) a local folder means nothing to the server: the
    experiment then takes the server's own artifact root (e.g. S3 behind ``--artifacts-destination``).
    A URI (``s3://...``) is always passed on.
    """
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = artifact_location
    server = client.tracking_uri.startswith(("http://", "https://"))
    if location and not is_remote(location):
        location = None if server else Path(location).expanduser().resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)
