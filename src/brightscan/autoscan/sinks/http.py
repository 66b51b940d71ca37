"""One JSON request over HTTP, with every failure mode told apart (the sinks' transport)."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

__all__ = ["parse_body", "send_json"]


def send_json(method: str, url: str, body: Any, headers: Mapping[str, str], timeout: float
              ) -> tuple[int | None, Mapping[str, str], Any, str]:
    """Send one JSON request: (status, headers, parsed body, error).

    ``status`` is None when no answer came; ``error`` is then ``"refused"`` when nothing was sent
    (connection refused), else what happened (timeout, dropped connection).
    """
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json", **headers}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.headers, parse_body(resp.read()), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, parse_body(exc.read()), ""
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None, {}, None, "refused"  # nothing was sent
        return None, {}, None, f"{type(exc.reason).__name__}: {exc.reason}"
    except (TimeoutError, socket.timeout):
        return None, {}, None, f"no answer within {timeout:g} s"
    except (ConnectionError, http.client.HTTPException) as exc:
        return None, {}, None, f"connection dropped ({type(exc).__name__})"


def parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode() or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"message": raw[:300].decode(errors="replace").strip()}  # nginx's HTML pages
