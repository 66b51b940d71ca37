"""A fake SkyPortal on loopback: the API subset autoscan uses, with faults on demand.

Used by the tests, the latency benchmark and dry runs of a config. It follows SkyPortal's
documented endpoints and answers (``{"status": "success", "data": ...}``), keeps state in
memory, records every call, and can be told to answer 500 (before or *after* applying a
request) or to sleep past the client's timeout, with a seeded generator.

Server-side semantics copied from SkyPortal: saving a source to groups it is already saved to
creates nothing; a follow-up request with ``not_if_duplicates`` for an object that already has a
request of the same allocation is not created (answered ``ignored: true``); an annotation origin
is unique per object.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["FakeSkyPortal", "RecordedCall"]


@dataclass
class RecordedCall:
    """One request the fake received."""

    method: str  # GET | POST
    path: str  # path with query
    body: Any  # parsed JSON body (None for GET)
    status: int  # status answered (or that would have been, for a timed-out request)
    fault: str | None  # None | error_before | error_after | timeout
    received_at: float  # unix time
    answered_at: float  # unix time the answer was ready (just before it was written)


@dataclass
class _State:
    groups: dict[str, set[int]] = field(default_factory=dict)  # obj -> groups saved to
    saves: dict[str, int] = field(default_factory=dict)  # obj -> POSTs that saved something new
    save_times: dict[str, float] = field(default_factory=dict)  # obj -> first save time
    followups: list[dict[str, Any]] = field(default_factory=list)  # created requests
    annotations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # obj -> list


class FakeSkyPortal:
    """Threaded HTTP server on 127.0.0.1 implementing the SkyPortal calls autoscan makes.

    Parameters
    ----------
    token : str
        Expected ``Authorization: token <token>``; other requests get 401.
    error_rate : float
        Probability of answering 500 without doing anything.
    error_after_rate : float
        Probability of doing a POST's work and then answering 500 (the answer is lost).
    timeout_rate : float
        Probability of sleeping ``sleep_s`` before doing the work and answering.
    sleep_s : float
        Length of those sleeps (set it above the client's timeout).
    seed : int
        Seeds the fault generator.
    idempotent : bool
        Apply SkyPortal's server-side idempotence (above). ``False`` makes every POST create
        something, so tests can show what the client alone guarantees.
    timeout_applies : bool
        Whether a timed-out request is still applied after the sleep (the worst case: the
        client's retry may check before it lands) or dropped (an overloaded server giving up).
    """

    def __init__(self, token: str = "test-token", *, error_rate: float = 0.0,
                 error_after_rate: float = 0.0, timeout_rate: float = 0.0, sleep_s: float = 1.0,
                 seed: int = 0, idempotent: bool = True, timeout_applies: bool = True):
        self.token = token
        self.idempotent = idempotent
        self.timeout_applies = timeout_applies
        self.error_rate = error_rate
        self.error_after_rate = error_after_rate
        self.timeout_rate = timeout_rate
        self.sleep_s = sleep_s
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.state = _State()
        self.calls: list[RecordedCall] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
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
        """Follow-up requests created for an object."""
        with self._lock:
            return [r for r in self.state.followups if r["obj_id"] == obj_id]

    def effective_saves(self) -> dict[str, int]:
        """objectId -> number of POSTs that saved it to a group it was not yet in."""
        with self._lock:
            return dict(self.state.saves)

    def effective_followups(self) -> dict[str, int]:
        """objectId -> number of follow-up requests created."""
        with self._lock:
            counts: dict[str, int] = {}
            for r in self.state.followups:
                counts[r["obj_id"]] = counts.get(r["obj_id"], 0) + 1
            return counts

    def effective_annotations(self) -> dict[str, int]:
        """objectId -> number of annotations created."""
        with self._lock:
            return {k: len(v) for k, v in self.state.annotations.items()}

    # ---- the API ---------------------------------------------------------------------------
    def draw_fault(self, method: str) -> str | None:
        """Which fault (if any) this request suffers."""
        with self._lock:
            u = float(self._rng.random())
        cuts = [("error_before", self.error_rate),
                ("error_after", self.error_after_rate if method == "POST" else 0.0),
                ("timeout", self.timeout_rate)]
        edge = 0.0
        for fault, rate in cuts:
            edge += rate
            if u < edge:
                return fault
        return None

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Apply one request to the state; return (status, JSON answer)."""
        parts = urllib.parse.urlsplit(path)
        segs = [urllib.parse.unquote(s) for s in parts.path.strip("/").split("/")]
        query = urllib.parse.parse_qs(parts.query)
        with self._lock:
            if segs[:2] == ["api", "sources"] and len(segs) == 3 and method == "GET":
                return self._get_source(segs[2])
            if segs == ["api", "sources"] and method == "POST":
                return self._post_source(body)
            if segs[:2] == ["api", "sources"] and len(segs) == 4 and segs[3] == "annotations":
                return self._annotations(method, segs[2], body)
            if segs == ["api", "followup_request"] and method == "GET":
                obj = (query.get("sourceID") or [None])[0]
                found = [r for r in self.state.followups if obj is None or r["obj_id"] == obj]
                return 200, _ok({"followup_requests": found, "totalMatches": len(found)})
            if segs == ["api", "followup_request"] and method == "POST":
                return self._post_followup(body)
        return 404, _err(f"no route {method} {parts.path}")

    def _get_source(self, obj: str) -> tuple[int, Any]:
        if obj not in self.state.groups:
            return 400, _err(f"Source {obj} not found")
        return 200, _ok({"id": obj, "groups": [{"id": g} for g in sorted(self.state.groups[obj])]})

    def _post_source(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            return 400, _err("missing source id")
        obj, groups = body["id"], set(body.get("group_ids") or [])
        have = self.state.groups.setdefault(obj, set())
        if groups - have or not self.idempotent:
            self.state.saves[obj] = self.state.saves.get(obj, 0) + 1
            self.state.save_times.setdefault(obj, time.time())
        have |= groups
        return 200, _ok({"id": obj})

    def _post_followup(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or "obj_id" not in body or "allocation_id" not in body:
            return 400, _err("obj_id and allocation_id are required")
        if body["obj_id"] not in self.state.groups:
            return 400, _err(f"Could not find source with ID {body['obj_id']}.")
        same = [r for r in self.state.followups
                if r["obj_id"] == body["obj_id"] and r["allocation_id"] == body["allocation_id"]]
        if same and body.get("not_if_duplicates") and self.idempotent:
            return 200, {"status": "success", "message": "duplicate request, not submitted",
                         "data": {"id": same[0]["id"], "ignored": True}}
        req = {"id": len(self.state.followups) + 1, "obj_id": body["obj_id"],
               "allocation_id": body["allocation_id"], "payload": body.get("payload"),
               "status": "submitted", "created_at": time.time()}
        self.state.followups.append(req)
        return 200, _ok({"id": req["id"]})

    def _annotations(self, method: str, obj: str, body: Any) -> tuple[int, Any]:
        existing = self.state.annotations.setdefault(obj, [])
        if method == "GET":
            return 200, _ok(existing)
        if not isinstance(body, dict) or "origin" not in body:
            return 400, _err("origin is required")
        if self.idempotent and any(a["origin"] == body["origin"] for a in existing):
            return 400, _err(f"Annotation with origin {body['origin']} already exists for {obj}")
        existing.append({"id": sum(map(len, self.state.annotations.values())) + 1, "obj_id": obj,
                         "origin": body["origin"], "data": body.get("data")})
        return 200, _ok({"annotation_id": existing[-1]["id"]})


def _ok(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def _err(message: str) -> dict[str, Any]:
    return {"status": "error", "message": message}


class _Handler(BaseHTTPRequestHandler):
    portal: FakeSkyPortal
    protocol_version = "HTTP/1.0"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self, method: str) -> None:
        received = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        if self.headers.get("Authorization") != f"token {self.portal.token}":
            return self._answer(401, _err("Unauthorized"), method, body, None, received)
        fault = self.portal.draw_fault(method)
        if fault == "error_before":
            return self._answer(500, _err("injected error"), method, body, fault, received)
        if fault == "timeout":
            time.sleep(self.portal.sleep_s)
            if not self.portal.timeout_applies:
                return self._answer(503, _err("gave up"), method, body, fault, received)
        status, answer = self.portal.handle(method, self.path, body)
        if fault == "error_after":
            status, answer = 500, _err("injected error after the work was done")
        self._answer(status, answer, method, body, fault, received)

    def _answer(self, status: int, answer: Any, method: str, body: Any, fault: str | None,
                received: float) -> None:
        payload = json.dumps(answer).encode()
        with self.portal._lock:  # recorded before the client can see the answer
            self.portal.calls.append(RecordedCall(method, self.path, body, status, fault, received,
                                                  time.time()))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) or was killed

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")
