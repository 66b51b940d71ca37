"""The actions contract: what the outbox and the service hand to a sink, and what a sink answers.

The write path (service, outbox) depends on this module only, never on a sink: a sink is built
from the configuration (:mod:`brightscan.autoscan.build`) and passed in.

A sink's :meth:`~Sink.deliver` either returns a short description of what the receiving end now
holds (the action is *done*) or raises :class:`SinkError`: ``retryable`` says whether the outbox
should try again later, ``ambiguous`` that a request of this action may have been applied
without our knowing (the action becomes ``unconfirmed``). Every sink is written so that
delivering the same action twice has the effect of delivering it once; the outbox relies on that
after a crash between "the sink acknowledged" and "marked done" (see ``docs/autoscan.md``).

:func:`save_extras` is what the service adds to a ``save`` action's payload: the alert's light
curve in compact form (the candidate and its ``prv_candidates``, upper limits included) and its
three cutouts (gzipped FITS, base64), keyed by :data:`THUMBNAIL_TYPES`.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, Protocol

from brightscan.alerts.records import CUTOUT_FIELDS, Alert
from brightscan.errors import BrightscanError

__all__ = ["ActionRequest", "PHOTOMETRY_KEYS", "Sink", "SinkError", "THUMBNAIL_TYPES", "save_extras"]

#: Per-epoch fields kept from ``candidate`` / ``prv_candidates``.
PHOTOMETRY_KEYS = ("jd", "fid", "magpsf", "sigmapsf", "diffmaglim", "isdiffpos", "ra", "dec",
                   "programid")
#: SkyPortal thumbnail type of each cutout, in CUTOUT_FIELDS order (the keys of ``cutouts``).
THUMBNAIL_TYPES = {"science": "new", "reference": "ref", "difference": "sub"}


class SinkError(BrightscanError):
    """A sink could not apply an action.

    ``retryable`` when a later attempt may succeed; ``ambiguous`` when a request of the action
    was sent and may have been applied (timeout, dropped connection, 5xx), so the next attempt
    must find out before sending anything again. ``wait_until`` (Unix time) when the receiving end
    is still deciding (a follow-up request pending at the facility): the outbox checks again until
    then, whatever its attempt count, and gives up only after it.
    """

    def __init__(self, message: str, *, retryable: bool, ambiguous: bool = False,
                 wait_until: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.wait_until = wait_until


@dataclass(frozen=True)
class ActionRequest:
    """One outbox action as a sink sees it."""

    kind: str  # save | followup | annotation
    object_id: str  # ZTF objectId
    idempotency_key: str  # e.g. "save:ZTF21aaaaaaa"
    payload: dict[str, Any]  # kind-specific data (score, model, position, ...)
    unconfirmed: bool = False  # an earlier attempt's request may have been applied unseen


class Sink(Protocol):
    """What the dispatcher calls (a sink may also count ``rate_limited`` 429 answers)."""

    def deliver(self, action: ActionRequest) -> str:
        """Apply the action (idempotently); return a description, or raise SinkError."""


def save_extras(alert: Alert) -> dict[str, Any]:
    """``photometry`` and ``cutouts`` entries for a save action's payload (JSON-ready)."""
    epochs = [alert.candidate, *alert.prv_candidates]
    photometry = [{k: _jsonable(e.get(k)) for k in PHOTOMETRY_KEYS} for e in epochs]
    cutouts = {name: base64.b64encode(alert.cutouts[packet]).decode("ascii")
               for name, packet in zip(THUMBNAIL_TYPES, CUTOUT_FIELDS) if alert.cutouts.get(packet)}
    return {"photometry": photometry, "cutouts": cutouts}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
