"""Who may read the status page: the Host allow-list, the token (a login form that sets a cookie,
or ``Authorization: Bearer`` for scripts) and the security headers on every answer.

The token never travels in a URL: ``?token=`` is refused (it would land in browser history, proxy
logs and, copied into links, everywhere), no page, redirect or log line holds it, and the cookie the
login form sets holds an HMAC of it, not the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

__all__ = ["COOKIE", "LOGIN_PATH", "HostAllowList", "SecurityHeaders", "TokenGate", "host_of"]

#: Name of the session cookie the login form sets.
COOKIE = "brightscan_session"
#: Where the login form lives (GET shows it, POST checks the token).
LOGIN_PATH = "/login"
#: Largest login form body read (a token is a few dozen bytes; nothing bigger is buffered).
MAX_FORM_BYTES = 4096

_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\[\]:/@\s]+))(?::(?P<port>[0-9]{1,5}))?")


def host_of(header: str | None) -> str | None:
    """The host named by a ``Host`` header, lower-case and without port or IPv6 brackets.

    ``"[::1]:8765"`` gives ``"::1"``, ``"Localhost:80"`` gives ``"localhost"``; a malformed header
    (two ports, an unbalanced bracket, a bracketed name that is not an IPv6 address) gives ``None``.
    """
    match = _HOST.fullmatch(header or "")
    if match is None:
        return None
    if match["v6"] is not None:
        try:
            return str(ipaddress.IPv6Address(match["v6"]))
        except ValueError:
            return None
    return match["name"].lower()


def _canonical(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower()


class HostAllowList:
    """ASGI middleware answering 400 to a request whose ``Host`` is not allowed (DNS rebinding).

    Unlike Starlette's ``TrustedHostMiddleware`` (whose versions split the header on ``:`` or keep
    the brackets), an IPv6 literal ``[::1]:8765`` is compared as the address ``::1``, in any of its
    spellings. ``"*"`` in ``hosts`` allows any host.
    """

    def __init__(self, app: Any, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = {_canonical(h) for h in hosts}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and "*" not in self.hosts:
            header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            host = host_of(header)
            if host is None or _canonical(host) not in self.hosts:
                await _plain(send, 400, "this page answers only its own host name")
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: ``Referrer-Policy: no-referrer`` (no page address leaves with a click on a
    SkyPortal link), ``X-Content-Type-Options: nosniff``, ``Cache-Control: no-store`` (no page is
    kept by a shared cache) and ``X-Frame-Options: DENY`` on every answer."""

    HEADERS = [(b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff"),
               (b"cache-control", b"no-store"), (b"x-frame-options", b"DENY")]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*(message.get("headers") or []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class TokenGate:
    """The page's token check, shared by every route.

    Parameters
    ----------
    token : str or None
        The access token; ``None`` lets every request in (a loopback page).
    """

    def __init__(self, token: str | None) -> None:
        self.token = token
        # the cookie holds a keyed digest, so a stolen cookie does not reveal the token (and a new
        # token ends every session)
        self.session = None if token is None else hmac.new(
            token.encode(), b"brightscan autoscan serve session v1", hashlib.sha256).hexdigest()

    def refusal(self, request: Any) -> str | None:
        """Why ``request`` may not read the page (``None`` when it may)."""
        if "token" in request.query_params:
            return (f"a token in the address is refused (it would be kept in browser history and "
                    f"logs): log in at {LOGIN_PATH}, or send 'Authorization: Bearer <token>'")
        if self.token is None:
            return None
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer " and _same(header[7:], self.token):
            return None
        if self.session is not None and _same(request.cookies.get(COOKIE, ""), self.session):
            return None
        return f"a valid token is required: log in at {LOGIN_PATH}, or send 'Authorization: Bearer <token>'"

    def accepts(self, given: str) -> bool:
        """Whether ``given`` (from the login form) is the token, compared in constant time."""
        return self.token is not None and _same(given, self.token)

    def cookie_header(self, secure: bool) -> str:
        """The ``Set-Cookie`` value opening a session (``Secure`` when served over https)."""
        flags = "; Secure" if secure else ""
        return f"{COOKIE}={self.session}; Path=/; HttpOnly; SameSite=Strict{flags}"

    @staticmethod
    def clear_cookie_header(secure: bool) -> str:
        """The ``Set-Cookie`` value ending the session."""
        flags = "; Secure" if secure else ""
        return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{flags}"


async def read_form_token(request: Any) -> str | None:
    """The ``token`` field of an ``application/x-www-form-urlencoded`` POST body, or ``None`` for a
    body that is too long (over :data:`MAX_FORM_BYTES`), not a form, or has no such field."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), max_num_fields=4, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("token") or []
    return values[0] if len(values) == 1 else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


async def _plain(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
