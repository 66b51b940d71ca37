"""Exception and warning classes.

Every error a user can cause derives from :class:`BrightscanError`; errors about one alert carry
its ``candid``/``objectId`` and the pipeline ``stage`` so they become rejection records.
"""

from __future__ import annotations


class BrightscanError(Exception):
    """Base class of all brightscan errors."""


class BrightscanWarning(UserWarning):
    """Base class of all brightscan warnings."""


class AlertError(BrightscanError):
    """One alert cannot be used; the batch goes on.

    Parameters
    ----------
    reason : str
        Human-readable reason, e.g. ``"missing feature sgscore1"``.
    candid, object_id : int or str, optional
        Identity of the alert where known.
    """

    stage = "alert"

    def __init__(self, reason: str, *, candid: int | None = None, object_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.candid = candid
        self.object_id = object_id

    def __str__(self) -> str:
        who = f"candid {self.candid}" if self.candid is not None else "alert"
        if self.object_id:
            who += f" ({self.object_id})"
        return f"{who}: {self.reason}"


class CutoutError(AlertError):
    """A cutout cannot be turned into a valid image channel."""

    stage = "cutout"


class FeatureError(AlertError):
    """A required feature is missing or invalid."""

    stage = "features"


class SurveyMismatchError(AlertError):
    """An alert of one survey met a model (or feature set) made for another (ZTF vs Rubin)."""

    stage = "survey"


class InputError(BrightscanError):
    """An input path or argument cannot be used at all (usage error)."""


class ModelFileError(BrightscanError):
    """A model directory is missing, corrupted or does not match what is asked of it."""


class ConfigError(BrightscanError):
    """A configuration file or value is invalid."""


class LimitExceeded(BrightscanError):
    """An input claims, or expands to, more than a read limit allows (a decompression bomb).

    Parameters
    ----------
    reason : str
        What was found, e.g. ``"block decompresses to more than 16777216 bytes"``.
    limit : str
        The :class:`~brightscan.alerts.limits.ReadLimits` field that was exceeded, with its value
        (``"max_block_bytes=16777216"``); it ends the message, so every rejection names it.
    """

    def __init__(self, reason: str, limit: str) -> None:
        super().__init__(f"{reason} ({limit})")
        self.reason = reason
        self.limit = limit
