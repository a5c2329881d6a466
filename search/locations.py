"""Local paths and URIs: which is which, decided in one place.

A location with a scheme (``s3://bucket/prefix``, ``sqlite:///mlruns.db``, ``http://host:5000``)
is handed to the library that speaks it as given; anything else is a path on this machine, which
medtune resolves against the folder it was started in.
"""

from __future__ import annotations


def is_remote(location: str) -> bool:
    """A URI (``s3://...``, ``http://...``) rather than a local path."""
    return "://" in str(location)
