"""One JSON request over HTTP, with every failure mode told apart (the sinks' transport)."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from brightscan.autoscan.secrets import mask_url

__all__ = ["parse_body", "send_json"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: urllib would resend the Authorization header wherever it points, and
    turn a redirected POST into a GET that "succeeds" without doing anything."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirect)


def send_json(method: str, url: str, body: Any, headers: Mapping[str, str], timeout: float
              ) -> tuple[int | None, Mapping[str, str], Any, str]:
    """Send one JSON request: (status, headers, parsed body, error).

    ``status`` is None when no answer came; ``error`` is then ``"refused"`` when nothing was sent
    (connection refused), else what happened (timeout, dropped connection). A redirect is never
    followed: it comes back as its 3xx status, with a message naming where it pointed.
    """
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json", **headers}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            return resp.status, resp.headers, parse_body(resp.read()), ""
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = mask_url(exc.headers.get("Location") or "nowhere")
            return exc.code, exc.headers, {"message": f"redirect to {where} not followed: requests go only to "
                                                      "the configured URL (correct it)"}, ""
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
