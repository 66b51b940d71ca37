"""The SkyPortal sink: saves, follow-up requests and annotations through :mod:`.client`.

Each action checks what SkyPortal already holds before it writes, so delivering an action twice
has the effect of delivering it once (the outbox relies on that; see ``docs/autoscan.md``).
The token is sent only in the ``Authorization`` header and never appears in a log message or an
exception.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from brightscan.autoscan.actions import THUMBNAIL_TYPES, ActionRequest, SinkError
from brightscan.autoscan.config import DEFAULT_ORIGIN
from brightscan.autoscan.sinks.skyportal.client import (ALERT_THUMBNAILS, Annotation, FollowupRequest,
                                                        SkyPortalClient, SkyPortalError)
from brightscan.autoscan.sinks.skyportal.followup import (FollowupPlan, matching_requests,
                                                          request_state)
from brightscan.autoscan.sinks.skyportal.known import KnownState
from brightscan.autoscan.sinks.skyportal.payloads import photometry_body, thumbnail_pngs
from brightscan.errors import ConfigError
from brightscan.times import jd_to_datetime

__all__ = ["DEFAULT_ORIGIN", "SkyPortalSink"]

log = logging.getLogger(__name__)


class SkyPortalSink:
    """Save, request follow-up and annotate through SkyPortal's (Fritz's) REST API.

    A **save** posts what a scanner needs to see, in the production bot's order: the candidate
    (``POST /api/candidates``), the light curve with its upper limits (``PUT /api/photometry``),
    the new/ref/sub thumbnails (``POST /api/thumbnail``), then the source to the groups (``POST
    /api/sources``). A **follow-up** request carries start and end dates, priority, mode, target
    and source groups and the constraints (see :mod:`~brightscan.autoscan.sinks.skyportal.followup`). The
    **annotation** (score, model id and version) is posted under our origin to our groups.

    Each attempt starts by asking SkyPortal what already exists (the groups and thumbnails of the
    source, the object's requests of the allocation on every page, our annotation), so a repeat
    after a crash or a lost answer does nothing twice; a POST whose outcome is unknown is never
    followed by another until that check says it did not land. The save's check (``GET
    /api/sources/{obj_id}``) also answers the object's follow-up requests and annotations, so for
    ``known_for_s`` afterwards the object's first follow-up and annotation attempts, when not
    unconfirmed, take "none of ours exists" from it instead of asking again (see
    :mod:`~brightscan.autoscan.sinks.skyportal.known`): an object then costs 9 requests, not 11.

    Parameters
    ----------
    client : SkyPortalClient
        The API client (URL, token, timeouts, rate limit).
    group_ids : list of int
        Groups to save to; the annotation's groups.
    filter_ids : list of int
        SkyPortal filters the candidate is posted for (``/api/candidates`` needs one).
    followup : FollowupPlan, optional
        The follow-up request; required for ``followup`` actions.
    annotation_origin : str
        Origin of the score annotation; ``{model_id}`` and ``{model_version}`` are filled in.
    instrument_id : int, optional
        SkyPortal's id of ZTF for photometry (looked up by name when not given).
    stream_ids : list of int
        Photometry streams (optional).
    followup_timeout : float, optional
        Timeout of the follow-up POST, during which SkyPortal calls the facility (SEDM: 30 s).
    known_for_s : float
        How long the save's check stands in for the follow-up's and annotation's (0: never).
    """

    def __init__(self, client: SkyPortalClient, *, group_ids: Sequence[int],
                 filter_ids: Sequence[int] = (), followup: FollowupPlan | None = None,
                 annotation_origin: str = DEFAULT_ORIGIN, instrument_id: int | None = None,
                 stream_ids: Sequence[int] = (), followup_timeout: float | None = None,
                 known_for_s: float = 60.0, clock: Callable[[], float] = time.time):
        self.client = client
        self.group_ids = list(group_ids)
        self.filter_ids = list(filter_ids)
        self.followup = followup
        self.annotation_origin = annotation_origin
        self.instrument_id, self.stream_ids = instrument_id, list(stream_ids)
        self.followup_timeout, self.clock = followup_timeout, clock
        self.known = KnownState(known_for_s)
        try:
            origin = annotation_origin.format(model_id="m", model_version="1")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"annotation_origin {annotation_origin!r}: bad placeholder {exc}") from None
        if not (origin[:1].isalnum() or origin[:1] == "_"):
            raise ConfigError(f"annotation_origin {annotation_origin!r} must start with a letter, "
                              "digit or underscore (SkyPortal's rule)")

    def __repr__(self) -> str:  # no token here either
        return f"SkyPortalSink({self.client.base_url!r}, group_ids={self.group_ids})"

    @property
    def rate_limited(self) -> int:
        """429 answers received so far."""
        return self.client.rate_limited

    def deliver(self, action: ActionRequest) -> str:
        """Check what exists, then do what is missing; see the class docstring."""
        handler = {"save": self._save, "followup": self._followup,
                   "annotation": self._annotate}.get(action.kind)
        if handler is None:
            raise SinkError(f"SkyPortal sink cannot do {action.kind!r}", retryable=False)
        try:
            return handler(action)
        except SkyPortalError as exc:
            # an earlier unconfirmed request stays unconfirmed until a check settles it
            raise SinkError(str(exc), retryable=exc.retryable,
                            ambiguous=exc.ambiguous or action.unconfirmed) from None

    # ---- save -------------------------------------------------------------------------------
    def _save(self, action: ActionRequest) -> str:
        obj, payload = action.object_id, action.payload
        source = self.client.get_source(obj)
        self.known.remember(obj, source)
        wanted = set(self.group_ids)
        thumbs = {THUMBNAIL_TYPES[n] for n, data in (payload.get("cutouts") or {}).items()
                  if data and n in THUMBNAIL_TYPES}
        have = source.thumbnail_types if source else frozenset()
        if source and wanted <= source.group_ids and thumbs <= have:
            return f"already saved to groups {sorted(wanted)}"
        ra, dec = payload.get("ra"), payload.get("dec")
        if self.filter_ids:
            if ra is None or dec is None or payload.get("candid") is None:
                raise SinkError("the save payload lacks candid/ra/dec for the candidate", retryable=False)
            self.client.post_candidates(obj, ra=ra, dec=dec, filter_ids=self.filter_ids,
                                        passing_alert_id=int(payload["candid"]),
                                        passed_at=_iso_from_jd(payload["jd"]))
        points = self._put_photometry(obj, payload)
        posted = self._post_thumbnails(obj, payload, have)
        if not (source and wanted <= source.group_ids):
            self._post_source(obj, ra, dec)
        return (f"saved to groups {sorted(wanted)} with {points} photometry points"
                f"{'; thumbnails ' + ','.join(posted) if posted else ''}")

    def _put_photometry(self, obj: str, payload: dict[str, Any]) -> int:
        if not payload.get("photometry"):
            return 0
        instrument = self.instrument_id or self.client.get_instrument("ZTF")
        body = photometry_body(obj, payload["photometry"], instrument_id=instrument,
                               group_ids=self.group_ids, stream_ids=self.stream_ids)
        return len(self.client.put_photometry(body)) if body else 0

    def _post_thumbnails(self, obj: str, payload: dict[str, Any], have: frozenset[str]) -> list[str]:
        missing = [t for t in ALERT_THUMBNAILS if t not in have]
        if not missing or not payload.get("cutouts"):
            return []
        pngs = thumbnail_pngs(obj, payload["cutouts"])
        for ttype in missing:
            if ttype in pngs:  # sent once each: a lost answer is settled by the next check
                self.client.post_thumbnail(obj, ttype, pngs[ttype])
        return [t for t in missing if t in pngs]

    def _post_source(self, obj: str, ra: float | None, dec: float | None) -> None:
        """Save to the groups; any doubt (no answer, 5xx, a refusal) is settled by looking."""
        wanted = set(self.group_ids)
        try:
            answer = self.client.post_sources(obj, self.group_ids, ra=ra, dec=dec)
            if wanted <= answer.saved_to_groups:
                return
            doubt = f"SkyPortal saved {obj} to groups {sorted(answer.saved_to_groups)} only"
        except SkyPortalError as exc:
            if exc.status is not None and exc.status < 500 and exc.status not in (400, 409):
                raise  # 401, 403, 404...: a refusal to act on, not a doubt to settle
            doubt = str(exc)
        source = self.client.get_source(obj)  # e.g. a database race answered "already exists"
        if source and wanted <= source.group_ids:
            return
        raise SinkError(f"{doubt}; not saved to {sorted(wanted - (source.group_ids if source else set()))}",
                        retryable=True)

    # ---- follow-up --------------------------------------------------------------------------
    def _followup(self, action: ActionRequest) -> str:
        plan = self.followup
        if plan is None:
            raise SinkError("follow-up needs allocation_id in the config", retryable=False)
        obj = action.object_id
        allocations = self.known.take(obj, "followup")
        if action.unconfirmed or allocations is None or plan.allocation_id in allocations:
            existing = matching_requests(self.client.get_followup_requests(obj, plan.allocation_id), plan)
        else:  # the save's check a moment ago: no request of this allocation at all
            existing = []
        found = _judge_existing(existing, unconfirmed=action.unconfirmed)
        if found is not None:
            return found
        now = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).replace(tzinfo=None)
        body = plan.request_body(obj, now)  # its form was checked when the plan was made
        try:
            answer = self.client.post_followup_request(body, timeout=self.followup_timeout)
        except SkyPortalError as exc:
            if not exc.ambiguous:
                raise  # a refusal (400: the server's reason) or never sent (429, refused)
            raise SinkError(f"{exc}; it may be pending on SkyPortal: the next attempt lists the "
                            "requests before sending again", retryable=True, ambiguous=True) from None
        if answer.ignored:
            return f"follow-up not requested: SkyPortal ignored it ({answer.message})"
        if request_state(answer.status or "") in ("refused", "gone"):
            raise SinkError(f"follow-up request {answer.id} {answer.status}", retryable=False)
        return f"follow-up request {answer.id} created ({answer.status})"

    # ---- annotation -------------------------------------------------------------------------
    def _annotate(self, action: ActionRequest) -> str:
        obj, payload = action.object_id, action.payload
        origin = self.annotation_origin.format(model_id=payload.get("model_id"),
                                               model_version=payload.get("model_version"))
        data = {k: payload.get(k) for k in ("score", "model_id", "model_version", "candid")}
        origins = self.known.take(obj, "annotation")
        if action.unconfirmed or origins is None or origin in origins:
            ours = [a for a in self.client.get_annotations(obj) if a.origin == origin]
        else:  # the save's check a moment ago: no annotation of this origin (a taken one is a 400)
            ours = []
        if ours:
            return self._update_annotation(obj, ours[0], data)
        try:
            return f"annotation {self.client.post_annotation(obj, origin, data, self.group_ids)} posted"
        except SkyPortalError as exc:
            if exc.status != 400:
                raise
            refusal = exc  # perhaps the origin is taken: look again
        ours = [a for a in self.client.get_annotations(obj) if a.origin == origin]
        if ours:  # ours after all (an earlier attempt's answer was lost)
            return self._update_annotation(obj, ours[0], data)
        raise SinkError(f"{refusal} -- if an annotation with origin {origin!r} exists on {obj} in "
                        "groups this token cannot read (another bot, another group), set another "
                        "[sink.skyportal] annotation_origin", retryable=False)

    def _update_annotation(self, obj: str, existing: Annotation, data: dict[str, Any]) -> str:
        groups_ok = not existing.group_ids or set(self.group_ids) <= existing.group_ids
        if existing.data == data and groups_ok:
            return f"annotation {existing.id} already posted"
        self.client.put_annotation(obj, existing.id, data, self.group_ids)
        return f"annotation {existing.id} updated (its data or groups differed)"


def _iso_from_jd(jd: float) -> str:
    """``passed_at`` of a candidate: the alert's time (so a repeat posts the same candidate)."""
    return jd_to_datetime(jd).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _end_time(request: FollowupRequest) -> float | None:
    """Unix time of a request's ``end_date`` (UTC, as we send it); None when it has none we read."""
    try:
        end = dt.datetime.fromisoformat(str(request.payload["end_date"]))
    except (KeyError, ValueError):
        return None
    return (end if end.tzinfo else end.replace(tzinfo=dt.timezone.utc)).timestamp()


def _judge_existing(existing: list[FollowupRequest], *, unconfirmed: bool) -> str | None:
    """What the object's requests of the allocation mean for ours; None when we should post."""
    states = {r.id: request_state(r.status) for r in existing}
    by_state = {s: [r for r in existing if states[r.id] == s] for s in ("active", "pending", "refused", "gone")}
    if by_state["active"]:
        r = by_state["active"][-1]
        return f"follow-up request {r.id} exists ({r.status})"
    if by_state["pending"]:
        r = by_state["pending"][-1]
        raise SinkError(f"follow-up request {r.id} is still {r.status!r}; checking again later",
                        retryable=True, ambiguous=unconfirmed, wait_until=_end_time(r))
    if by_state["refused"]:
        r = by_state["refused"][-1]
        raise SinkError(f"follow-up request {r.id}: {r.status}", retryable=False)
    if unconfirmed and by_state["gone"]:  # most likely the outcome of our own unanswered POST
        r = by_state["gone"][-1]
        raise SinkError(f"follow-up request {r.id} ended {r.status!r} after our request went "
                        "unanswered; not sent again (replay it with `brightscan autoscan retry`)",
                        retryable=False)
    return None

