"""The one exception type of the data layer."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data.

    A ValueError subclass so callers that validate configs can catch both in one place.
    Every message names the path or key at fault and what was expected, because these
    errors usually surface in `medtune validate` or a Ray worker log, far from the data.
    """
