"""Credentials in URIs: kept in the driver's memory, never written, printed or pickled.

A tracking URI may carry a password (``http://user:pass@host``, ``postgresql://user:pass@db/mlflow``).
medtune uses it as given to talk to MLflow, but every file it writes (``medtune_sweep.json``,
``best_config.yaml``, the MLflow ``space.yaml``, Tune's saved state), every line it prints and every
error message holds the URI without its user info. A later process gets the secret back from the
environment: ``MLFLOW_TRACKING_URI`` holding the full URI (matched to the written one by everything
but the user info), or MLflow's own ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` for a
server.

Ray Tune writes ``storage`` into its experiment state and every trial's context, and boto3 never
reads keys from a data URI, so credentials in ``storage`` or ``data.source`` are refused before
anything starts (``uri_credentials_problem``): they belong in the environment or the AWS config chain.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

#: ``scheme://userinfo@``: the user info (everything up to the last ``@`` before the host's end).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"]+@)+")


def has_userinfo(uri: str) -> bool:
    return bool(_USERINFO.search(uri))


def redact_text(text: str) -> str:
    """Any text (a URI, an error message, a traceback, a log line) with the user info of every URI in
    it removed: ``scheme://user:password@host/...`` becomes ``scheme://host/...``."""
    return _USERINFO.sub(r"\g<scheme>", text)


#: A single URI is redacted as any text is; the name says what the caller holds.
redact_uri = redact_text


def redact_document(doc: Any) -> Any:
    """A deep copy of a space document (or any JSON-like value) with every string's URIs redacted."""
    if isinstance(doc, str):
        return redact_text(doc)
    if isinstance(doc, dict):
        return {key: redact_document(value) for key, value in doc.items()}
    if isinstance(doc, (list, tuple)):
        return type(doc)(redact_document(value) for value in doc)
    return copy.deepcopy(doc)


def uri_credentials_problem(uri: str) -> str | None:
    """Why a ``storage`` or ``data.source`` URI with user info is refused; None when it has none."""
    if not has_userinfo(uri):
        return None
    return (f"{redact_uri(uri)!r} carries credentials in the URI (removed here); Ray Tune would write them "
            "into its saved state. Give them through the environment or the AWS config chain "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role)")


def with_credentials_from_environment(uri: str) -> str:
    """A written (redacted) tracking URI given back its user info from ``MLFLOW_TRACKING_URI``.

    Used where a URI comes from a file medtune wrote (a resumed sweep's record, a best_config.yaml):
    when the environment's URI is the same but for its user info, the environment's is used.
    Otherwise the URI is returned as it is (MLflow may still read ``MLFLOW_TRACKING_USERNAME``/
    ``MLFLOW_TRACKING_PASSWORD`` for a server).
    """
    from_env = os.environ.get("MLFLOW_TRACKING_URI", "")
    if from_env and not has_userinfo(uri) and has_userinfo(from_env) and redact_uri(from_env) == uri:
        return from_env
    return uri


def tracking_uri_for_mlflow(uri: str) -> str:
    """The URI to give MLflow: a server's user info moves into MLflow's own credential variables.

    MLflow builds run links, artifact URLs and error messages from the tracking URI and prints
    some of them (``View run ... at``); given ``http://host`` plus ``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD`` (set in this process only), it sends the same Basic credentials
    and has no secret to print. Database URIs are passed unchanged: their driver needs the password.
    """
    from urllib.parse import unquote, urlsplit

    if not uri.startswith(("http://", "https://")) or not has_userinfo(uri):
        return uri
    parts = urlsplit(uri)
    if parts.username is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
    return redact_uri(uri)
