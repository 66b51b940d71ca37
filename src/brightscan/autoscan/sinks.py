"""Where actions go: SkyPortal/Fritz, a webhook, or a local JSONL/CSV log.

A sink's :meth:`~Sink.deliver` either returns a short description of what the receiving end now
holds (the action is *done*) or raises :class:`SinkError` (``retryable`` says whether the outbox
should try again later). Every sink is written so that delivering the same action twice has the
effect of delivering it once; the outbox relies on that after a crash between "the sink
acknowledged" and "marked done" (see ``docs/autoscan.md``).

The SkyPortal token is sent only in the ``Authorization`` header and never appears in a log
message or an exception.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from brightscan.errors import BrightscanError

__all__ = ["ActionRequest", "LogSink", "Sink", "SinkError", "SkyPortalSink", "WebhookSink"]

log = logging.getLogger(__name__)


class SinkError(BrightscanError):
    """A sink could not apply an action; ``retryable`` when a later attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ActionRequest:
    """One outbox action as a sink sees it."""

    kind: str  # save | followup | annotation
    object_id: str  # ZTF objectId
    idempotency_key: str  # e.g. "save:ZTF21aaaaaaa"
    payload: dict[str, Any]  # kind-specific data (score, model, position, ...)


class Sink(Protocol):
    """What the dispatcher calls."""

    def deliver(self, action: ActionRequest) -> str:
        """Apply the action (idempotently); return a description, or raise SinkError."""


@dataclass
class _Response:
    status: int
    body: Any


class _JsonClient:
    """Tiny JSON-over-HTTP client (stdlib only) with timeouts and backoff on 5xx / timeouts."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout: float, retries: int,
                 backoff: float):
        self.base_url = base_url.rstrip("/")
        self._headers = headers  # may hold a secret: never logged
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def request(self, method: str, path: str, body: Any = None,
                extra_headers: dict[str, str] | None = None, *, retry: bool = True) -> _Response:
        """Send one request, retrying 5xx, connection errors and timeouts with backoff.

        ``retry=False`` sends it once: a POST that timed out may have been applied, so the caller
        re-checks the server's state before sending it again.
        """
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **self._headers, **(extra_headers or {})}
        if data is not None:
            headers["Content-Type"] = "application/json"
        last = ""
        for attempt in range(self.retries + 1 if retry else 1):
            if attempt:
                time.sleep(_delay(self.backoff, attempt))
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return _Response(resp.status, _parse(resp.read()))
            except urllib.error.HTTPError as exc:
                response = _Response(exc.code, _parse(exc.read()))
                if exc.code < 500:
                    return response
                last = f"HTTP {exc.code} {_message(response.body)}"
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
                log.debug("%s %s failed (attempt %d): %s", method, path, attempt + 1, last)
        raise SinkError(f"{method} {path}: {last}", retryable=True)


#: Longest wait between two tries inside one delivery; the outbox backs off further.
MAX_BACKOFF_S = 8.0


def _delay(backoff: float, attempt: int) -> float:
    return min(MAX_BACKOFF_S, backoff * 2 ** (attempt - 1))


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode() or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"message": raw[:200].decode(errors="replace")}


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", ""))[:300]
    return ""


def _data(resp: _Response) -> Any:
    return resp.body.get("data") if isinstance(resp.body, dict) else None


def _fail(what: str, resp: _Response) -> SinkError:
    # 4xx (other than the "already done" answers handled by the caller) will not heal by itself
    return SinkError(f"{what}: HTTP {resp.status} {_message(resp.body)}",
                     retryable=resp.status in (408, 409, 429))


class SkyPortalSink:
    """Save, request follow-up and annotate through SkyPortal's (Fritz's) REST API.

    Before each POST the sink asks SkyPortal whether the effect already exists (``GET
    /api/sources/{obj_id}`` for the groups, ``GET /api/followup_request?sourceID=`` for a
    request of the allocation, ``GET /api/sources/{obj_id}/annotations`` for our origin), so an
    action retried after a crash between the POST and the outbox update does not repeat it.

    Parameters
    ----------
    base_url, token : str
        SkyPortal instance and API token (``Authorization: token <TOKEN>``).
    group_ids : list of int
        Groups to save sources to.
    allocation_id : int, optional
        Follow-up allocation; required for ``followup`` actions.
    followup_payload : dict
        Instrument-specific follow-up payload (from the config file).
    annotation_origin : str
        ``origin`` of the score annotation.
    timeout, retries, backoff : float, int, float
        Per-request timeout (s), retries on 5xx/timeouts, first backoff delay (s, doubling).
    """

    def __init__(self, base_url: str, token: str, *, group_ids: list[int],
                 allocation_id: int | None = None, followup_payload: dict[str, Any] | None = None,
                 annotation_origin: str = "brightscan", timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.5):
        self.base_url = base_url
        self.group_ids = list(group_ids)
        self.allocation_id = allocation_id
        self.followup_payload = dict(followup_payload or {})
        self.annotation_origin = annotation_origin
        self._client = _JsonClient(base_url, {"Authorization": f"token {token}"},
                                   timeout=timeout, retries=retries, backoff=backoff)

    def __repr__(self) -> str:  # no token here either
        return f"SkyPortalSink({self.base_url!r}, group_ids={self.group_ids})"

    def deliver(self, action: ActionRequest) -> str:
        """Check whether the effect exists, else POST it (once); repeat on 5xx / timeouts.

        Each attempt starts again with the check, so a POST whose answer was lost (timeout,
        5xx after the work was done) is not sent a second time once its effect is visible.
        """
        handler = {"save": self._save, "followup": self._followup,
                   "annotation": self._annotate}.get(action.kind)
        if handler is None:
            raise SinkError(f"SkyPortal sink cannot do {action.kind!r}", retryable=False)
        client = self._client
        for attempt in range(client.retries + 1):
            if attempt:
                time.sleep(_delay(client.backoff, attempt))
            try:
                return handler(action)
            except SinkError as exc:
                if not exc.retryable or attempt == client.retries:
                    raise
                log.debug("%s: %s; checking again", action.idempotency_key, exc)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _post(self, path: str, body: Any) -> _Response:
        resp = self._client.request("POST", path, body, retry=False)
        if resp.status >= 500:
            raise SinkError(f"POST {path}: HTTP {resp.status} {_message(resp.body)}", retryable=True)
        return resp

    def _obj(self, action: ActionRequest) -> str:
        return urllib.parse.quote(action.object_id, safe="")

    def _save(self, action: ActionRequest) -> str:
        resp = self._client.request("GET", f"/api/sources/{self._obj(action)}")
        if resp.status == 200:
            groups = {g.get("id") for g in (_data(resp) or {}).get("groups", []) if isinstance(g, dict)}
            if set(self.group_ids) <= groups:
                return f"already saved to groups {sorted(self.group_ids)}"
        elif resp.status not in (400, 404):  # SkyPortal answers 400 "Invalid source ID" too
            raise _fail("checking source", resp)
        body = {"id": action.object_id, "group_ids": self.group_ids}
        for name in ("ra", "dec"):
            if name in action.payload:
                body[name] = action.payload[name]
        resp = self._post("/api/sources", body)
        if resp.status == 200:
            return f"saved to groups {sorted(self.group_ids)}"
        if "already" in _message(resp.body).lower():
            return "already saved"
        raise _fail("saving source", resp)

    def _followup(self, action: ActionRequest) -> str:
        if self.allocation_id is None:
            raise SinkError("follow-up needs allocation_id in the config", retryable=False)
        query = urllib.parse.urlencode({"sourceID": action.object_id})
        resp = self._client.request("GET", f"/api/followup_request?{query}")
        if resp.status != 200:
            raise _fail("listing follow-up requests", resp)
        data = _data(resp) or {}
        existing = data.get("followup_requests", []) if isinstance(data, dict) else data
        for req in existing or []:
            if (req.get("obj_id") == action.object_id and req.get("allocation_id") == self.allocation_id
                    and "deleted" not in str(req.get("status", "")).lower()):
                return f"follow-up request {req.get('id')} already exists"
        body = {
            "obj_id": action.object_id,
            "allocation_id": self.allocation_id,
            "payload": self.followup_payload,
            "not_if_duplicates": True,
            "not_if_classified": True,
            "not_if_spectra_exist": True,
        }
        resp = self._post("/api/followup_request", body)
        data = _data(resp) or {}
        if resp.status == 200 and isinstance(data, dict) and data.get("ignored"):
            return f"follow-up ignored by SkyPortal ({_message(resp.body) or 'constraints'})"
        if resp.status == 200:
            return f"follow-up request {data.get('id')} created"
        raise _fail("requesting follow-up", resp)

    def _annotate(self, action: ActionRequest) -> str:
        path = f"/api/sources/{self._obj(action)}/annotations"
        resp = self._client.request("GET", path)
        if resp.status == 200:
            for ann in _data(resp) or []:
                if isinstance(ann, dict) and ann.get("origin") == self.annotation_origin:
                    return "annotation already posted"
        elif resp.status not in (400, 404):
            raise _fail("listing annotations", resp)
        keys = ("score", "model_id", "model_version")
        body = {"origin": self.annotation_origin, "data": {k: action.payload.get(k) for k in keys}}
        resp = self._post(path, body)
        if resp.status == 200:
            return "annotation posted"
        if "already" in _message(resp.body).lower():
            return "annotation already posted"
        raise _fail("posting annotation", resp)


class WebhookSink:
    """POST each action as JSON to a URL, with an ``Idempotency-Key`` header.

    The receiver must deduplicate on that key (or on ``idempotency_key`` in the body) for the
    exactly-once effect: the outbox may deliver an action again after a crash.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 3, backoff: float = 0.5,
                 headers: dict[str, str] | None = None):
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self._path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self._client = _JsonClient(f"{parts.scheme}://{parts.netloc}", dict(headers or {}),
                                   timeout=timeout, retries=retries, backoff=backoff)

    def deliver(self, action: ActionRequest) -> str:
        body = {"kind": action.kind, "objectId": action.object_id,
                "idempotency_key": action.idempotency_key, "payload": action.payload}
        resp = self._client.request("POST", self._path, body,
                                    {"Idempotency-Key": action.idempotency_key})
        if 200 <= resp.status < 300:
            return f"webhook answered {resp.status}"
        raise _fail("webhook", resp)


def _jsonl_key(line: str) -> str | None:
    """The idempotency key of a JSONL line; None for a line torn by a crash mid-write."""
    try:
        return json.loads(line)["idempotency_key"]
    except (json.JSONDecodeError, KeyError, TypeError):
        if line.strip():
            log.warning("ignoring a torn line in the action log: %.60s", line)
        return None


class LogSink:
    """Append actions to a JSONL file (or CSV when the name ends in ``.csv``), once per key."""

    _FIELDS = ("time", "kind", "objectId", "idempotency_key", "payload")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._seen: set[str] | None = None

    def _keys(self) -> set[str]:
        if self._seen is None:
            self._seen = set()
            if self.path.exists():
                with open(self.path, newline="", encoding="utf-8") as fh:
                    if self.path.suffix == ".csv":
                        self._seen = {row["idempotency_key"] for row in csv.DictReader(fh)}
                    else:
                        self._seen = {key for line in fh if (key := _jsonl_key(line))}
        return self._seen

    def deliver(self, action: ActionRequest) -> str:
        if action.idempotency_key in self._keys():
            return f"already in {self.path.name}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {"time": time.time(), "kind": action.kind, "objectId": action.object_id,
               "idempotency_key": action.idempotency_key, "payload": action.payload}
        new = not self.path.exists() or self.path.stat().st_size == 0
        torn = not new and not self.path.read_bytes().endswith(b"\n")  # killed mid-line before
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            if torn:
                fh.write("\n")
            if self.path.suffix == ".csv":
                writer = csv.DictWriter(fh, fieldnames=self._FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow({**row, "payload": json.dumps(row["payload"])})
            else:
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._keys().add(action.idempotency_key)
        return f"written to {self.path.name}"
