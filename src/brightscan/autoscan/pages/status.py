"""``brightscan autoscan serve``: a small read-only live status page over the autoscan database.

Starlette with server-side Jinja templates (no JavaScript build step); every page is also
available as JSON (``/status.json``, ``/object/<objectId>.json``). The database is opened with
:func:`~brightscan.autoscan.store.open_readonly`, so the page can run beside ``autoscan run`` on
the same SQLite file (WAL readers never block the writer) or PostgreSQL database and can never
write to it. It binds 127.0.0.1 by default; any other address needs a token, given as
``Authorization: Bearer <token>`` or ``?token=<token>`` (Prometheus scraping ``/metrics`` sends the
bearer token: ``authorization: {credentials_file: ...}`` in its scrape config). Pages reload themselves
(``<meta http-equiv="refresh">``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from typing import Any

from brightscan.autoscan.drift import DriftMonitor
from brightscan.autoscan.store import Store, open_readonly, sources
from brightscan.autoscan.pages.views import object_view, status_view
from brightscan.errors import ConfigError

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Host headers a page bound to loopback answers (anything else is a DNS-rebinding attempt).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def allowed_hosts_for(bind: str) -> list[str]:
    """The Host headers to answer when serving on ``bind``: loopback names, and the bound address
    itself when it is a specific one; any host for a wildcard bind (which needs a token)."""
    if bind in ("0.0.0.0", "::", ""):
        return ["*"]
    return sorted({*LOOPBACK_HOSTS, bind})


def create_app(store: Store, *, token: str | None = None, refresh_s: int = 10,
               skyportal_url: str | None = None, allowed_hosts: list[str] | None = None,
               drift: DriftMonitor | None = None) -> Any:
    """The Starlette application over an opened (read-only) store.

    ``drift`` gives the last nights' drift marks (the status page, ``/status.json`` and
    ``/metrics``); without it they say that no reference was given. ``/metrics`` answers in the
    Prometheus text format under the same token and Host rules as the pages.

    Only requests whose ``Host`` is in ``allowed_hosts`` (default: the loopback names) are
    answered, so a page on loopback without a token cannot be reached through DNS rebinding;
    every answer carries ``Referrer-Policy: no-referrer``.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from brightscan.pages import render

    def allowed(request: Any) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token") or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
        return hmac.compare_digest(given.encode(), token.encode())

    def page(request: Any, template: str, data: dict[str, Any], as_json: bool) -> Response:
        if as_json:
            return JSONResponse(data)
        suffix = f"?token={request.query_params['token']}" if "token" in request.query_params else ""
        return HTMLResponse(render(template, v=data, refresh=refresh_s, suffix=suffix,
                                   skyportal=(skyportal_url or "").rstrip("/") or None,
                                   href=lambda oid: f"/object/{oid}{suffix}"))

    def status(request: Any) -> Response:
        if not allowed(request):
            return PlainTextResponse("a valid token is required", status_code=401)
        with store.engine.connect() as conn:
            data = status_view(conn, time.time())
            data["drift"] = drift_view(conn, drift)
        return page(request, "status.html", data, request.url.path.endswith(".json"))

    def obj(request: Any) -> Response:
        if not allowed(request):
            return PlainTextResponse("a valid token is required", status_code=401)
        object_id = request.path_params["object_id"]
        as_json = object_id.endswith(".json")
        object_id = object_id.removesuffix(".json")
        with store.engine.connect() as conn:
            data = object_view(conn, object_id)
        if data is None:
            return PlainTextResponse(f"no source {object_id}", status_code=404)
        return page(request, "object.html", data, as_json)

    def triplet(request: Any) -> Response:
        import numpy as np
        import sqlalchemy as sa

        from brightscan.pages import triplet_png

        if not allowed(request):
            return PlainTextResponse("a valid token is required", status_code=401)
        with store.engine.connect() as conn:
            blob = conn.execute(sa.select(sources.c.triplet)
                                .where(sources.c.object_id == request.path_params["object_id"])).scalar()
        if not blob:
            return PlainTextResponse("no triplet", status_code=404)
        image = np.frombuffer(blob, dtype=np.float16).reshape(_side(blob), _side(blob), 3).astype(np.float32)
        return Response(triplet_png(image), media_type="image/png")

    def metrics(request: Any) -> Response:
        from brightscan.autoscan.pages.metrics import render_metrics

        if not allowed(request):
            return PlainTextResponse("a valid token is required", status_code=401)
        body, content_type = render_metrics(store, drift)
        return Response(body, media_type=content_type)

    routes = [Route("/", status), Route("/status.json", status), Route("/metrics", metrics), Route("/object/{object_id}/triplet.png", triplet),
              Route("/object/{object_id}", obj)]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOOPBACK_HOSTS)),
                  Middleware(_NoReferrer)]
    return Starlette(routes=routes, middleware=middleware)


class _NoReferrer:
    """ASGI middleware: ``Referrer-Policy: no-referrer`` and ``X-Content-Type-Options: nosniff`` on
    every answer, so no page address leaves with a click on a SkyPortal link."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"referrer-policy", b"no-referrer"),
                                      (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, with_headers)


def drift_view(conn: Any, drift: DriftMonitor | None) -> dict[str, Any]:
    """The last nights' drift reports (JSON-ready), or why there are none."""
    if drift is None or drift.reference is None:
        return {"nights": [], "skipped": "no reference distribution: give the model directory "
                "(autoscan serve --model, or [drift] reference) of a model trained by brightscan"}
    return {"nights": [r.to_dict() for r in drift.recent(conn)], "skipped": None,
            "psi_max": drift.config.psi_max, "ks_max": drift.config.ks_max}


def serve(db_url: str, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          refresh_s: int = 10, skyportal_url: str | None = None, drift: DriftMonitor | None = None) -> None:
    """Serve the status page (and ``/metrics``) until interrupted.

    Raises
    ------
    ConfigError
        A non-loopback ``host`` without a ``token``.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(f"serving on {host} (not loopback) needs --token or BRIGHTSCAN_SERVE_TOKEN")
    import uvicorn

    store = open_readonly(db_url)
    app = create_app(store, token=token, refresh_s=refresh_s, skyportal_url=skyportal_url,
                     allowed_hosts=allowed_hosts_for(host), drift=drift)
    log.info("status page on http://%s:%d/", host, port)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.dispose()


def _side(blob: bytes) -> int:
    # a square float16 triplet: 63 px for ZTF models, the model's size (48) for Rubin ones
    return int(round((len(blob) // 6) ** 0.5))
