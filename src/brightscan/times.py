"""Julian dates and Unix time: the one conversion every module uses.

ZTF stamps alerts with a Julian date (``jd``, UTC); the database, logs and pages use Unix seconds
or calendar dates. JD 2440587.5 is 1970-01-01 00:00 UTC.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["JD_UNIX_EPOCH", "SECONDS_PER_DAY", "jd_to_datetime", "jd_to_unix", "unix_to_jd"]

#: Julian date of the Unix epoch, 1970-01-01 00:00 UTC.
JD_UNIX_EPOCH = 2440587.5
#: Seconds in a day (Julian dates count days).
SECONDS_PER_DAY = 86400.0


def jd_to_unix(jd: float) -> float:
    """Unix time (seconds) of a Julian date."""
    return (float(jd) - JD_UNIX_EPOCH) * SECONDS_PER_DAY


def unix_to_jd(seconds: float) -> float:
    """Julian date of a Unix time (seconds)."""
    return float(seconds) / SECONDS_PER_DAY + JD_UNIX_EPOCH


def jd_to_datetime(jd: float) -> dt.datetime:
    """A Julian date as an aware UTC datetime."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=float(jd) - JD_UNIX_EPOCH)
