"""Poisoned inputs: what an unexpected exception while processing an input becomes.

An input (a file, a Kafka message, one alert of them) whose processing raises something nobody
planned for must not stop the service, nor be read again and again after each restart. It is
recorded as a rejection of stage ``quarantine`` naming the input and the exception (type and
message, passwords masked, length capped), and the input is marked consumed as usual.

The database is not an input: when it is unreachable, locked or out of space
(:func:`is_service_fault`), the exception goes on up, the input stays unconsumed and is read again
once the database is back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from brightscan.alerts import Alert, Rejection

__all__ = ["STAGE", "describe", "guard_reading", "is_service_fault", "rejection_for", "safe_order"]

#: The ``stage`` of a quarantine rejection.
STAGE = "quarantine"

_MAX_REASON = 1000  # characters of the exception message kept in the rejection
_MAX_OBJECT_ID = 32  # the store's column width
_INT64 = (-(2**63), 2**63 - 1)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@")


def is_service_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's problem (down, locked, connection lost), not the input's.

    Parameters
    ----------
    exc : BaseException
        The exception met while processing an input.

    Returns
    -------
    bool
        True for SQLAlchemy's ``OperationalError`` / ``InterfaceError`` / ``DisconnectionError``,
        sqlite3's ``OperationalError``, and any error that invalidated the connection.
    """
    faults = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError,
              sqlite3.OperationalError, sqlite3.InterfaceError)
    return isinstance(exc, faults) or bool(getattr(exc, "connection_invalidated", False))


def describe(exc: BaseException) -> str:
    """``"TypeName: message"`` of an exception, short, with URL passwords masked.

    A database error is described by the driver's own exception (without SQLAlchemy's echo of the
    statement and its parameters).
    """
    inner = getattr(exc, "orig", None) if isinstance(exc, sa.exc.DBAPIError) else None
    shown = inner if isinstance(inner, BaseException) else exc
    message = str(shown).strip().splitlines()[0] if str(shown).strip() else ""
    message = _URL_PASSWORD.sub(r"\g<head>***@", message).replace("\x00", "\\x00")  # PostgreSQL text refuses NUL
    text = f"{type(shown).__name__}: {message}" if message else type(shown).__name__
    if shown is not exc:
        text = f"{type(exc).__name__} ({text})"
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 3] + "..."


def rejection_for(item: Alert | Rejection | None, source: str, exc: BaseException, where: str) -> Rejection:
    """The quarantine record of ``item`` (an alert, or ``None`` for a whole input) at ``source``.

    Parameters
    ----------
    item : Alert, Rejection or None
        The alert whose processing raised; ``None`` when the input itself could not be read on.
    source : str
        Names the input (file path, ``kafka:topic[partition]@offset``).
    exc : BaseException
        What was raised.
    where : str
        What was being done (``"reading"``, ``"processing"``), said in the reason.
    """
    candid = getattr(item, "candid", None)
    if not (isinstance(candid, int) and _INT64[0] <= candid <= _INT64[1]):
        candid = None
    object_id = getattr(item, "object_id", None)
    object_id = object_id[:_MAX_OBJECT_ID] if isinstance(object_id, str) else None
    source = getattr(item, "source", None) or source
    source = str(source).replace("\x00", "\\x00")[:500]
    return Rejection(candid, object_id, source, STAGE, f"unexpected error {where}: {describe(exc)}")


def guard_reading(items: Iterable[Alert | Rejection], source: str) -> Iterator[Alert | Rejection]:
    """Yield ``items``; if reading them raises, end with one quarantine rejection naming ``source``.

    The alerts read before the failure are kept; a database fault goes on up.
    """
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - poison: any failure of the input, named in the record
            if is_service_fault(exc):
                raise
            yield rejection_for(None, source, exc, "reading")
            return
        yield item


def safe_order(item: Any) -> tuple[float, int]:
    """Sort key (jd, candid) that never raises, for alerts processed one by one."""
    try:
        jd = float(item.jd)
    except Exception:  # noqa: BLE001 - a poisoned alert sorts last
        jd = float("inf")
    candid = getattr(item, "candid", None)
    return jd, candid if isinstance(candid, int) else 0
