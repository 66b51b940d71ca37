"""A stand-in for SkyPortal on loopback: the real handlers' behaviour (see
:mod:`tests.autoscan.fakeportal_api`), SkyPortal's nginx rate limit, and faults on demand.

Used by the tests and the autoscan benchmark (it is test support: never installed). What it
models besides the handlers:

* **Rate limit** as SkyPortal's nginx does it (baselayer's ``limit_req`` per ``Authorization``
  header, ``rate`` r/s, ``burst`` with ``nodelay``; default 5 and 10): a request over the limit
  is answered 429 at once, without reaching the API, with nginx's HTML page; ``retry_after``
  adds a ``Retry-After`` header (nginx sends none by default).
* **Pending submission window**: ``POST /api/followup_request`` stores the request as "pending
  submission", then "calls the facility" for ``submit_delay_s`` (SEDM's call may take 30 s)
  before answering; set it above the client's timeout to model a POST that times out while its
  request is listed and then submitted.
* **Faults**, drawn per request with a seeded generator: ``error_rate`` (502 from the proxy,
  nothing done), ``error_after_rate`` (the work is done, then 500), ``timeout_rate`` (sleep
  ``sleep_s``; the work is done after it, or dropped with ``timeout_applies=False``),
  ``drop_rate`` (the work is done, the connection closed without an answer), ``save_race_rate``
  (a concurrent save wins a database race: 400 "... already exists", nothing of ours saved).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import numpy as np

from tests.autoscan import fakeportal_api as api
from tests.autoscan.fakeportal_api import PortalState, Token

__all__ = ["FakeSkyPortal", "RecordedCall"]

NGINX_429 = (b"<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n<center>"
             b"<h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
NGINX_502 = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
OTHER_TOKEN = "other-bot-token"  # a second bot, in group 99 only


@dataclass
class RecordedCall:
    """One request the fake received."""

    method: str  # GET | POST | PUT
    path: str  # path with query
    body: Any  # parsed JSON body (None for GET)
    status: int  # status answered (or that would have been, for a dropped answer)
    fault: str | None  # None | error_before | error_after | timeout | drop | save_race | rate_limited
    received_at: float  # unix time
    answered_at: float  # unix time the answer was ready


class _NginxLimit:
    """``limit_req zone=... rate=R burst=B nodelay`` keyed by the Authorization header."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}  # key -> (excess, last time)

    def admit(self, key: str, now: float) -> float | None:
        """None when admitted, else seconds until a request would be."""
        if self.rate <= 0:
            return None
        if key not in self._state:
            self._state[key] = (0.0, now)
            return None
        excess, last = self._state[key]
        excess = max(0.0, excess - self.rate * (now - last)) + 1.0
        if excess > self.burst:
            return (excess - self.burst) / self.rate
        self._state[key] = (excess, now)
        return None


class FakeSkyPortal:
    """Threaded HTTP server on 127.0.0.1 behaving like SkyPortal for the calls autoscan makes.

    The token's user is in groups 1-9; group 99 belongs to :data:`OTHER_TOKEN` only. Filters
    1-9 belong to the group of the same id, allocations 1-5 are SEDM allocations of group 1,
    instrument 1 is ZTF. Tests add more through :attr:`state` (under :attr:`lock`).

    Parameters
    ----------
    token : str
        The bot's token; other tokens get 401.
    rate, burst : float, int
        nginx rate limit (``rate <= 0``: none). ``retry_after``: send ``Retry-After``.
    submit_delay_s : float
        How long the facility call of a follow-up POST takes.
    facility : callable, optional
        ``(obj_id, payload) -> str`` SEDM's answer ("accepted" or a reason), or raises.
    error_rate, error_after_rate, timeout_rate, drop_rate, save_race_rate : float
        Fault probabilities (see the module docstring). ``sleep_s``: length of a timeout.
    seed : int
        Seeds the fault generator.
    """

    def __init__(self, token: str = "test-token", *, rate: float = 0.0, burst: int = 10,
                 retry_after: bool = True, submit_delay_s: float = 0.0,
                 facility: Callable[[str, dict[str, Any]], str] | None = None,
                 error_rate: float = 0.0, error_after_rate: float = 0.0, timeout_rate: float = 0.0,
                 drop_rate: float = 0.0, save_race_rate: float = 0.0, sleep_s: float = 1.0,
                 timeout_applies: bool = True, seed: int = 0):
        self.token = token
        self.state = PortalState(tokens={token: Token(1, set(range(1, 10))), OTHER_TOKEN: Token(2, {99})})
        self.state.groups = {g: f"group {g}" for g in [*range(1, 10), 99]}
        self.state.filters = {f: f for f in range(1, 10)}
        self.state.allocations = {a: {"group_id": 1, "facility": "SEDM"} for a in range(1, 6)}
        self.limit = _NginxLimit(rate, burst)
        self.retry_after, self.submit_delay_s = retry_after, submit_delay_s
        self.facility = facility or (lambda obj_id, payload: "accepted")
        self.rates = {"error_before": error_rate, "error_after": error_after_rate,
                      "timeout": timeout_rate, "drop": drop_rate, "save_race": save_race_rate}
        self.sleep_s, self.timeout_applies = sleep_s, timeout_applies
        self._rng = np.random.default_rng(seed)
        self.lock = threading.RLock()
        self.calls: list[RecordedCall] = []
        self._server: ThreadingHTTPServer | None = None

    # ---- life cycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeSkyPortal:
        """Serve in a daemon thread; returns self."""
        handler = type("Handler", (_Handler,), {"portal": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSkyPortal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what tests read -----------------------------------------------------------------------
    def followups_for(self, obj_id: str) -> list[dict[str, Any]]:
        """Follow-up requests stored for an object (any status)."""
        with self.lock:
            return [dict(r) for r in self.state.followups if r["obj_id"] == obj_id]

    def count(self, what: str) -> dict[str, int]:
        """objectId -> rows of ``followups``, ``annotations``, ``thumbnails``, ``candidates``,
        ``photometry`` or ``sources`` (active source rows)."""
        with self.lock:
            if what == "sources":
                rows = [{"obj_id": o} for (o, _), r in self.state.sources.items() if r["active"]]
            else:
                rows = getattr(self.state, what)
            counts: dict[str, int] = {}
            for r in rows:
                counts[r["obj_id"]] = counts.get(r["obj_id"], 0) + 1
            return counts

    def saved_groups(self, obj_id: str) -> set[int]:
        """Groups the object is actively saved to."""
        with self.lock:
            return {g for (o, g), r in self.state.sources.items() if o == obj_id and r["active"]}

    def thumbnail_types(self, obj_id: str) -> list[str]:
        """Types of the thumbnail rows of an object (duplicates kept)."""
        with self.lock:
            return sorted(t["type"] for t in self.state.thumbnails if t["obj_id"] == obj_id)

    def faults(self) -> set[str]:
        """Faults that happened."""
        with self.lock:
            return {c.fault for c in self.calls if c.fault}

    # ---- serving -------------------------------------------------------------------------------
    def draw_fault(self, method: str) -> str | None:
        """Which fault (if any) this request suffers (reads never race or drop)."""
        with self.lock:
            u = float(self._rng.random())
        edge = 0.0
        for fault, rate in self.rates.items():
            if method == "GET" and fault in ("error_after", "drop", "save_race"):
                continue
            edge += rate
            if u < edge:
                return fault
        return None

    def rate_check(self, key: str) -> float | None:
        with self.lock:
            return self.limit.admit(key, time.monotonic())

    def route(self, token: str, method: str, path: str, body: Any, fault: str | None) -> tuple[int, dict]:
        """Apply one request; returns (status, answer)."""
        parts = urllib.parse.urlsplit(path)
        segs = [urllib.parse.unquote(p) for p in parts.path.strip("/").split("/")]
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        body = body if isinstance(body, dict) else {}
        acl = {"POST": "Upload data", "PUT": "Upload data"}.get(method)
        if segs[-1:] == ["annotations"] or (len(segs) == 5 and segs[3] == "annotations"):
            acl = "Annotate" if method != "GET" else None
        if acl and acl not in self.state.tokens[token].acls:
            return api.error("HTTP 401: Unauthorized", 401)
        if segs[:2] == ["api", "followup_request"] and method == "POST" and len(segs) == 2:
            return self._post_followup(token, body)
        s = self.state
        with self.lock:
            match (method, segs):
                case ("GET", ["api", "instrument"]):
                    return api.ok([{"id": i, "name": n} for i, n in s.instruments.items()
                                   if query.get("name") in (None, n)])
                case ("GET", ["api", "sources", obj]):
                    return api.get_source(s, token, obj, query)
                case ("POST", ["api", "sources"]):
                    return api.post_source(s, token, body, race=lambda: fault == "save_race")
                case ("POST", ["api", "candidates"]):
                    return api.post_candidates(s, token, body)
                case ("PUT", ["api", "photometry"]):
                    return api.put_photometry(s, token, body)
                case ("POST", ["api", "thumbnail"]):
                    return api.post_thumbnail(s, token, body)
                case ("GET", ["api", "followup_request"]):
                    return api.get_followups(s, token, query)
                case ("GET", ["api", "sources", obj, "annotations"]):
                    return api.get_annotations(s, token, obj)
                case ("POST", ["api", "sources", obj, "annotations"]):
                    return api.post_annotation(s, token, obj, body)
                case ("PUT", ["api", "sources", obj, "annotations", ann]) if ann.isdigit():
                    return api.put_annotation(s, token, obj, int(ann), body)
        return api.error("HTTP 404: Not Found", 404)

    def _post_followup(self, token: str, body: dict[str, Any]) -> tuple[int, dict]:
        with self.lock:
            row = api.start_followup(self.state, token, body)
        if isinstance(row, tuple):  # answered before the facility call (refused or ignored)
            return row
        time.sleep(self.submit_delay_s)  # the facility call: the request is listed meanwhile
        try:
            answer: str | Exception = self.facility(row["obj_id"], row["payload"])
        except Exception as exc:  # noqa: BLE001 - the facility's failure becomes the request's status
            answer = exc
        with self.lock:
            return api.finish_followup(self.state, row, answer)

    def record(self, call: RecordedCall) -> None:
        with self.lock:
            self.calls.append(call)


class _Handler(BaseHTTPRequestHandler):
    portal: FakeSkyPortal
    protocol_version = "HTTP/1.0"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self, method: str) -> None:
        portal, received = self.portal, time.time()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        key = self.headers.get("Authorization") or ""
        wait = portal.rate_check(key)
        if wait is not None:  # nginx answers before the application sees anything
            headers = {"Retry-After": str(max(1, math.ceil(wait)))} if portal.retry_after else {}
            return self._answer(429, NGINX_429, method, body, "rate_limited", received, "text/html", headers)
        token = key.removeprefix("token ").strip() if key.startswith("token ") else None
        if token not in portal.state.tokens:
            msg = "HTTP 401: Unauthorized" if token else 'HTTP 401: Credentials malformed; expected form "Authorization: token abc123"'
            return self._json(*api.error(msg, 401), method, body, None, received)
        fault = portal.draw_fault(method)
        if fault == "error_before":
            return self._answer(502, NGINX_502, method, body, fault, received, "text/html")
        if fault == "timeout":
            time.sleep(portal.sleep_s)
            if not portal.timeout_applies:
                return self._answer(504, b"<html>504 Gateway Time-out</html>", method, body, fault,
                                    received, "text/html")
        status, answer = portal.route(token, method, self.path, body, fault)
        if fault == "error_after":
            status, answer = api.error("HTTP 500: Internal Server Error", 500)
        if fault == "drop":
            portal.record(RecordedCall(method, self.path, body, status, fault, received, time.time()))
            self.close_connection = True
            return None  # the work is done; the client gets no answer
        self._json(status, answer, method, body, fault, received)

    def _json(self, status: int, answer: dict, method: str, body: Any, fault: str | None,
              received: float) -> None:
        self._answer(status, json.dumps(answer).encode(), method, body, fault, received, "application/json")

    def _answer(self, status: int, payload: bytes, method: str, body: Any, fault: str | None,
                received: float, ctype: str, headers: dict[str, str] | None = None) -> None:
        # recorded before the client can see the answer
        self.portal.record(RecordedCall(method, self.path, body, status, fault, received, time.time()))
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) or was killed

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")
