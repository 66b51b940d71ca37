"""A client for SkyPortal's (Fritz's) REST API: one method per endpoint autoscan uses.

Each method is named after the endpoint it calls and returns a small typed result. A failure is a
:class:`SkyPortalError` carrying the server's own message (SkyPortal answers
``{"status": "error", "message": ...}``), the HTTP status and whether the outcome is *ambiguous*
(a timeout, a dropped connection or a 5xx after the request was sent: it may have been applied).

Retries: reads (GET), ``PUT /api/photometry`` (deduplicated by SkyPortal) and ``POST
/api/candidates`` (idempotent per object, filter and ``passed_at``) are retried on 5xx and
timeouts. Other POSTs are sent once: the caller checks SkyPortal's state before sending again.
Any request refused with 429 (SkyPortal's nginx rate limit rejects it before the application sees
it) or never connected is safe to resend and is.

Rate limit: a client-side token bucket (default 5 requests/s, bursts of 10: the defaults of
SkyPortal's per-token nginx ``limit_req``); a 429's ``Retry-After`` holds every request until it
has passed; :attr:`SkyPortalClient.rate_limited` counts the 429 answers.

The token is sent only in the ``Authorization`` header; it never appears in logs, errors or repr.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brightscan.autoscan.config import SkyPortalSinkSettings as _SETTINGS
from brightscan.autoscan.sinks.http import send_json
from brightscan.errors import BrightscanError

__all__ = ["Annotation", "FollowupAnswer", "FollowupRequest", "RateLimiter", "SaveAnswer",
           "SkyPortalClient", "SkyPortalError", "SourceInfo"]

log = logging.getLogger(__name__)

#: Rows per page when listing follow-up requests (SkyPortal's default page size).
PAGE_SIZE = 100
#: Alert thumbnail types SkyPortal shows on a source page.
ALERT_THUMBNAILS = ("new", "ref", "sub")


class SkyPortalError(BrightscanError):
    """SkyPortal refused a request, or its outcome is unknown.

    Attributes
    ----------
    status : int or None
        HTTP status (None when no answer came: timeout, refused or dropped connection).
    message : str
        The server's own message, or what went wrong on the way.
    ambiguous : bool
        The request was sent and may have been applied (timeout, dropped connection, 5xx).
    """

    def __init__(self, what: str, status: int | None, message: str, *, ambiguous: bool):
        self.what, self.status, self.message, self.ambiguous = what, status, message, ambiguous
        super().__init__(f"{what}: HTTP {status}: {message}" if status else f"{what}: {message}")

    @property
    def retryable(self) -> bool:
        """Whether trying later may succeed (no answer, 5xx, 408, 429) as opposed to a refusal."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


class RateLimiter:
    """Token bucket: ``rate`` requests per second on average, bursts of up to ``burst``.

    ``rate <= 0`` disables the bucket; :meth:`hold` (a ``Retry-After``) applies regardless.
    Thread-safe: one limiter serves every request of a client.
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate, self.burst = float(rate), max(1, int(burst))
        self._clock, self._sleep = clock, sleep
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                if self.rate > 0:
                    self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                wait = self._hold_until - now
                if wait <= 0 and (self.rate <= 0 or self._tokens >= 1.0):
                    self._tokens -= 1.0 if self.rate > 0 else 0.0
                    return waited
                if self.rate > 0:
                    wait = max(wait, (1.0 - self._tokens) / self.rate)
            self._sleep(wait)
            waited += wait

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the server said ``Retry-After``); the bucket empties."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)
            self._tokens = 0.0


@dataclass(frozen=True)
class SourceInfo:
    """``GET /api/sources/{obj_id}``: what the token can see of an object."""

    id: str  # objectId
    group_ids: frozenset[int]  # groups it is actively saved to (that the token can see)
    thumbnail_types: frozenset[str]  # alert thumbnails present (new, ref, sub)
    # what get_source always adds (source.py): the allocations of the object's non-deleted follow-up
    # requests and the origins of its annotations, both as the token can read them; None when the
    # answer lacks the key (an older SkyPortal), so nothing is concluded from it
    followup_allocation_ids: frozenset[int] | None = None
    annotation_origins: frozenset[str] | None = None


@dataclass(frozen=True)
class SaveAnswer:
    """``POST /api/sources``."""

    id: str
    saved_to_groups: frozenset[int]


@dataclass(frozen=True)
class FollowupRequest:
    """One row of ``GET /api/followup_request``."""

    id: int
    obj_id: str
    allocation_id: int
    status: str  # "pending submission", "submitted", "rejected: ...", "failed to submit: ...", ...
    target_group_ids: frozenset[int]
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FollowupAnswer:
    """``POST /api/followup_request``: created (``id``, ``status``) or ignored by a constraint."""

    id: int | None
    status: str | None  # the facility's verdict ("submitted", "rejected: ...")
    ignored: bool  # a constraint (not_if_duplicates, ...) stopped it; ``message`` says which
    message: str


@dataclass(frozen=True)
class Annotation:
    """One annotation of an object, as ``GET /api/sources/{obj_id}/annotations`` lists it."""

    id: int
    origin: str
    data: Mapping[str, Any]
    group_ids: frozenset[int]


class SkyPortalClient:
    """Talk to one SkyPortal instance.

    Parameters
    ----------
    base_url, token : str
        Instance URL and API token (``Authorization: token <TOKEN>``).
    timeout : float
        Seconds to wait for an answer.
    retries : int
        Extra tries of an idempotent request after a 5xx, a timeout or a refused connection.
    backoff : float
        First delay between tries, doubling (s).
    rate, burst : float, int
        Client-side rate limit (requests/s; ``0`` disables it) and burst size.
    max_rate_wait_s : float
        Longest a request waits for 429s to clear before failing (retryable).
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = _SETTINGS.timeout_s,
                 retries: int = _SETTINGS.retries, backoff: float = _SETTINGS.backoff_s,
                 rate: float = _SETTINGS.rate_limit, burst: int = _SETTINGS.rate_burst,
                 max_rate_wait_s: float = 60.0, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"token {token}"}  # a secret: never logged
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_rate_wait_s = max_rate_wait_s
        self.limiter = RateLimiter(rate, burst, sleep=sleep)
        self._sleep = sleep
        self._count_lock = threading.Lock()
        self.rate_limited = 0  # 429 answers received so far
        self._instrument_ids: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SkyPortalClient({self.base_url!r})"

    # ---- endpoints --------------------------------------------------------------------------
    def get_instrument(self, name: str) -> int:
        """``GET /api/instrument?name=``: the instrument's id (cached)."""
        if name not in self._instrument_ids:
            rows = self._call("GET", "/api/instrument", query={"name": name}) or []
            ids = [r["id"] for r in rows if isinstance(r, dict) and r.get("name") == name]
            if not ids:
                raise SkyPortalError(f"GET /api/instrument?name={name}", 404,
                                     f"no instrument named {name!r} on this instance", ambiguous=False)
            self._instrument_ids[name] = int(ids[0])
        return self._instrument_ids[name]

    def get_source(self, obj_id: str) -> SourceInfo | None:
        """``GET /api/sources/{obj_id}?includeThumbnails=true``; None when no such object."""
        try:
            data = self._call("GET", f"/api/sources/{_quote(obj_id)}",
                              query={"includeThumbnails": "true"})
        except SkyPortalError as exc:
            if exc.status == 404:  # "Source not found": no Obj with that id
                return None
            raise
        groups = frozenset(int(g["id"]) for g in data.get("groups") or [] if g.get("active", True))
        types = frozenset(t.get("type") for t in data.get("thumbnails") or [])
        requests = data.get("followup_requests")
        annotations = data.get("annotations")
        return SourceInfo(str(data.get("id", obj_id)), groups, types & frozenset(ALERT_THUMBNAILS),
                          None if not isinstance(requests, list) else frozenset(
                              int(r["allocation_id"]) for r in requests
                              if isinstance(r, dict) and r.get("allocation_id") is not None),
                          None if not isinstance(annotations, list) else frozenset(
                              str(a.get("origin")) for a in annotations if isinstance(a, dict)))

    def post_candidates(self, obj_id: str, *, ra: float, dec: float, filter_ids: list[int],
                        passing_alert_id: int, passed_at: str) -> list[int]:
        """``POST /api/candidates``; repeating it with the same ``passed_at`` creates nothing."""
        body = {"id": obj_id, "ra": ra, "dec": dec, "filter_ids": list(filter_ids),
                "passing_alert_id": passing_alert_id, "passed_at": passed_at}
        return list(self._call("POST", "/api/candidates", body=body, retry=True).get("ids", []))

    def put_photometry(self, body: Mapping[str, Any]) -> list[int]:
        """``PUT /api/photometry``: points SkyPortal already has are matched, not duplicated."""
        return list(self._call("PUT", "/api/photometry", body=dict(body), retry=True).get("ids", []))

    def post_thumbnail(self, obj_id: str, ttype: str, png_b64: str, survey: str = "ZTF") -> int:
        """``POST /api/thumbnail`` (not idempotent: check :meth:`get_source` first)."""
        body = {"obj_id": obj_id, "data": png_b64, "ttype": ttype, "survey": survey}
        return int(self._call("POST", "/api/thumbnail", body=body)["id"])

    def post_sources(self, obj_id: str, group_ids: list[int], *, ra: float | None = None,
                     dec: float | None = None) -> SaveAnswer:
        """``POST /api/sources``: save the object to groups (sent once; re-check on doubt)."""
        body: dict[str, Any] = {"id": obj_id, "group_ids": list(group_ids)}
        if ra is not None and dec is not None:
            body.update(ra=ra, dec=dec)
        data = self._call("POST", "/api/sources", body=body)
        return SaveAnswer(str(data.get("id", obj_id)), frozenset(data.get("saved_to_groups") or []))

    def get_followup_requests(self, source_id: str, allocation_id: int) -> list[FollowupRequest]:
        """``GET /api/followup_request`` for one object and allocation, every page.

        ``sourceID`` matches object ids *containing* it, so rows are kept only for ``source_id``
        itself.
        """
        found: list[FollowupRequest] = []
        page, seen = 1, 0
        while True:
            query = {"sourceID": source_id, "allocationID": allocation_id, "numPerPage": PAGE_SIZE,
                     "pageNumber": page}
            data = self._call("GET", "/api/followup_request", query=query)
            rows = data.get("followup_requests") or []
            seen += len(rows)
            found += [_followup(r) for r in rows if r.get("obj_id") == source_id
                      and int(r.get("allocation_id", -1)) == allocation_id]
            if not rows or seen >= int(data.get("totalMatches", 0)):
                return found
            page += 1

    def post_followup_request(self, body: Mapping[str, Any], *, timeout: float | None = None
                              ) -> FollowupAnswer:
        """``POST /api/followup_request`` (sent once: SkyPortal calls the facility meanwhile)."""
        data = self._call("POST", "/api/followup_request", body=dict(body), timeout=timeout)
        return FollowupAnswer(data.get("id"), data.get("request_status"), bool(data.get("ignored")),
                              str(data.get("message", "")))

    def get_annotations(self, obj_id: str) -> list[Annotation]:
        """``GET /api/sources/{obj_id}/annotations``: the ones the token's groups can read."""
        try:
            rows = self._call("GET", f"/api/sources/{_quote(obj_id)}/annotations") or []
        except SkyPortalError as exc:
            if exc.status == 404:
                return []
            raise
        return [Annotation(int(r["id"]), str(r.get("origin")), dict(r.get("data") or {}),
                           frozenset(int(g["id"]) for g in r.get("groups") or []))
                for r in rows if isinstance(r, dict)]

    def post_annotation(self, obj_id: str, origin: str, data: Mapping[str, Any],
                        group_ids: list[int]) -> int:
        """``POST /api/sources/{obj_id}/annotations`` (origin unique per object instance-wide)."""
        body = {"origin": origin, "data": dict(data), "group_ids": list(group_ids)}
        answer = self._call("POST", f"/api/sources/{_quote(obj_id)}/annotations", body=body)
        return int(answer["annotation_id"])

    def put_annotation(self, obj_id: str, annotation_id: int, data: Mapping[str, Any],
                       group_ids: list[int]) -> None:
        """``PUT /api/sources/{obj_id}/annotations/{id}``: replace data and groups."""
        self._call("PUT", f"/api/sources/{_quote(obj_id)}/annotations/{annotation_id}",
                   body={"data": dict(data), "group_ids": list(group_ids)}, retry=True)

    # ---- transport --------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
              body: Any = None, retry: bool | None = None, timeout: float | None = None) -> Any:
        """Send one request; return the answer's ``data`` or raise :class:`SkyPortalError`.

        ``retry`` (default: for GET only) re-sends after a 5xx, a timeout or a dropped
        connection. A 429 and a refused connection are re-sent whatever ``retry`` says.
        """
        retry = method == "GET" if retry is None else retry
        what = f"{method} {path}"
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        tries, refusals, rate_waited = 0, 0, 0.0
        while True:
            self.limiter.acquire()
            status, headers, answer, error = self._send(method, url, body, timeout or self.timeout)
            if status == 429:
                wait = self._note_429(headers, refusals)
                refusals += 1
                rate_waited += wait
                if rate_waited > self.max_rate_wait_s:
                    raise SkyPortalError(what, 429, f"still rate limited after {rate_waited:.0f} s",
                                         ambiguous=False)
                self.limiter.hold(wait)
                continue
            if status is not None and status < 500:
                if isinstance(answer, dict) and answer.get("status") == "success" and status < 300:
                    return answer.get("data")
                raise SkyPortalError(what, status, _message(answer), ambiguous=False)
            sent = error != "refused"
            tries += 1
            message = _message(answer) if status else error
            if (retry or not sent) and tries <= self.retries:
                log.debug("%s: %s; trying again (%d/%d)", what, message, tries, self.retries)
                self._sleep(min(8.0, self.backoff * 2 ** (tries - 1)))
                continue
            raise SkyPortalError(what, status, message, ambiguous=sent)

    def _send(self, method: str, url: str, body: Any, timeout: float
              ) -> tuple[int | None, Mapping[str, str], Any, str]:
        return send_json(method, url, body, self._headers, timeout)

    def _note_429(self, headers: Mapping[str, str], refusals: int) -> float:
        with self._count_lock:
            self.rate_limited += 1
        wait = _retry_after(headers.get("Retry-After"))
        if wait is None:  # nginx's limit_req sends none: one request's slot, doubling
            rate = self.limiter.rate if self.limiter.rate > 0 else 5.0
            wait = min(8.0, (1.0 / rate) * 2 ** min(refusals, 5))
        log.info("rate limited by SkyPortal (429); waiting %.2f s", wait)
        return wait


def _followup(row: Mapping[str, Any]) -> FollowupRequest:
    groups = frozenset(int(g["id"]) for g in row.get("target_groups") or [])
    return FollowupRequest(int(row["id"]), str(row["obj_id"]), int(row["allocation_id"]),
                           str(row.get("status", "")), groups, dict(row.get("payload") or {}))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _quote(obj_id: str) -> str:
    return urllib.parse.quote(obj_id, safe="")


def _message(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("message") or answer.get("status") or "")[:500]
    return ""
