"""The exception types of the data layer: ``DataError``, and the one case a caller may relax."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data.

    A ValueError subclass so callers that validate configs can catch both in one place.
    Every message names the path or key at fault and what was expected, because these
    errors usually surface in `medtune validate` or a Ray worker log, far from the data.
    """


class TooManyBadImages(DataError):
    """More unreadable images than ``DataConfig.max_bad_fraction`` allows (a setting the user can raise)."""


class DataSettingError(DataError):
    """A data setting that does not fit the data (a manifest column that is not there, a CSV setting
    on a folder): ``setting`` is its ``data:`` name, so the space file's key can be named."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # Ray pickles a trial's errors
        return type(self), (self.setting, str(self))
