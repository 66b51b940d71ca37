"""``brightscan autoscan serve``: a small read-only live status page over the autoscan database.

Starlette with server-side Jinja templates (no JavaScript build step); every page is also
available as JSON (``/status.json``, ``/object/<objectId>.json``). The database is opened with
:func:`~brightscan.autoscan.store.open_readonly`, so the page can run beside ``autoscan run`` on
the same SQLite file (WAL readers never block the writer) or PostgreSQL database and can never
write to it. It binds 127.0.0.1 by default; any other address needs a token: a browser logs in once
at ``/login`` (a session cookie), a script sends ``Authorization: Bearer <token>``; the token is
never put in an address (see :mod:`brightscan.autoscan.pages.access`);
Prometheus scraping ``/metrics`` sends the bearer token (``authorization: {credentials_file: ...}``
in its scrape config). Pages reload themselves
(``<meta http-equiv="refresh">``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
import warnings
from typing import Any

from brightscan.autoscan.drift import DriftMonitor
from brightscan.autoscan.pages.access import LOGIN_PATH, HostAllowList, SecurityHeaders, TokenGate, read_form_token
from brightscan.autoscan.store import Store, open_readonly, sources
from brightscan.autoscan.pages.outcomes import outcomes_routes
from brightscan.autoscan.pages.views import object_view, status_view
from brightscan.errors import BrightscanWarning, ConfigError

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
               classifications: str | None = None,
               drift: DriftMonitor | None = None) -> Any:
    """The Starlette application over an opened (read-only) store.

    ``drift`` gives the last nights' drift marks (the status page, ``/status.json`` and
    ``/metrics``); without it they say that no reference was given. ``/metrics`` answers in the
    Prometheus text format under the same token and Host rules as the pages.

    Only requests whose ``Host`` is in ``allowed_hosts`` (default: the loopback names) are
    answered, so a page on loopback without a token cannot be reached through DNS rebinding.
    With a ``token``, a browser logs in once at ``/login`` (the form sets an HttpOnly, SameSite=Strict
    cookie) and a script sends ``Authorization: Bearer <token>``; a ``?token=`` in the address is
    refused. Every answer carries ``Referrer-Policy: no-referrer``. With a ``classifications`` file the
    outcomes page is served at ``/outcomes`` and linked from the status page.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    from brightscan.pages import render

    gate = TokenGate(token)

    def login_page(message: str | None, status_code: int) -> Response:
        return HTMLResponse(render("login.html", message=message), status_code=status_code)

    def refused(request: Any) -> Response | None:
        reason = gate.refusal(request)
        if reason is None:
            return None
        code = 400 if "token" in request.query_params else 401
        wants_html = request.url.path == "/" or (request.url.path.startswith("/object/")
                                                 and not request.url.path.endswith((".json", ".png")))
        return login_page(reason, code) if wants_html else PlainTextResponse(reason, status_code=code)

    def page(request: Any, template: str, data: dict[str, Any], as_json: bool) -> Response:
        if as_json:
            return JSONResponse(data)
        return HTMLResponse(render(template, v=data, refresh=refresh_s, logout=token is not None,
                                   skyportal=(skyportal_url or "").rstrip("/") or None,
                                   href=lambda oid: f"/object/{oid}"))

    def status(request: Any) -> Response:
        if (no := refused(request)) is not None:
            return no
        with store.engine.connect() as conn:
            data = status_view(conn, time.time())
            data["drift"] = drift_view(conn, drift)
        data["outcomes"] = classifications is not None  # the page links /outcomes
        return page(request, "status.html", data, request.url.path.endswith(".json"))

    def obj(request: Any) -> Response:
        if (no := refused(request)) is not None:
            return no
        object_id = request.path_params["object_id"]
        as_json = object_id.endswith(".json")
        object_id = object_id.removesuffix(".json")
        with store.engine.connect() as conn:
            data = object_view(conn, object_id)
        if data is None:
            return PlainTextResponse(f"no source {object_id}", status_code=404)
        return page(request, "object.html", data, as_json)

    def triplet(request: Any) -> Response:
        if (no := refused(request)) is not None:
            return no
        png = _triplet_png(store, request.path_params["object_id"])
        if png is None:
            return PlainTextResponse("no triplet", status_code=404)
        return Response(png, media_type="image/png")

    async def login(request: Any) -> Response:
        if token is None:
            return RedirectResponse("/", status_code=303)
        if request.method == "GET":
            return login_page(None, 200)
        if not gate.accepts(await read_form_token(request) or ""):
            log.warning("status page: a login with a wrong token from %s", request.client.host if request.client else "?")
            return login_page("That is not the token.", 401)
        answer = RedirectResponse("/", status_code=303)
        answer.headers["set-cookie"] = gate.cookie_header(secure=request.url.scheme == "https")
        return answer

    async def logout(request: Any) -> Response:
        answer = RedirectResponse(LOGIN_PATH if token is not None else "/", status_code=303)
        answer.headers["set-cookie"] = gate.clear_cookie_header(secure=request.url.scheme == "https")
        return answer

    def metrics(request: Any) -> Response:
        from brightscan.autoscan.pages.metrics import render_metrics

        if (no := refused(request)) is not None:
            return no
        body, content_type = render_metrics(store, drift)
        return Response(body, media_type=content_type)

    routes = [Route("/", status), Route("/status.json", status), Route("/metrics", metrics),
              Route("/object/{object_id}/triplet.png", triplet),
              Route("/object/{object_id}", obj), Route(LOGIN_PATH, login, methods=["GET", "POST"]),
              Route("/logout", logout, methods=["POST"])]
    routes += outcomes_routes(store, classifications, refused)
    middleware = [Middleware(HostAllowList, hosts=list(allowed_hosts or LOOPBACK_HOSTS)),
                  Middleware(SecurityHeaders)]
    return Starlette(routes=routes, middleware=middleware)


def _triplet_png(store: Store, object_id: str) -> bytes | None:
    """The PNG of a source's stored triplet, or ``None`` when it has none."""
    import numpy as np
    import sqlalchemy as sa

    from brightscan.pages import triplet_png

    with store.engine.connect() as conn:
        blob = conn.execute(sa.select(sources.c.triplet).where(sources.c.object_id == object_id)).scalar()
    if not blob:
        return None
    side = _side(blob)
    return triplet_png(np.frombuffer(blob, dtype=np.float16).reshape(side, side, 3).astype(np.float32))


def drift_view(conn: Any, drift: DriftMonitor | None) -> dict[str, Any]:
    """The last nights' drift reports (JSON-ready), or why there are none."""
    if drift is None or drift.reference is None:
        return {"nights": [], "skipped": "no reference distribution: give the model directory "
                "(autoscan serve --model, or [drift] reference) of a model trained by brightscan"}
    return {"nights": [r.to_dict() for r in drift.recent(conn)], "skipped": None,
            "psi_max": drift.config.psi_max, "ks_max": drift.config.ks_max}


def serve(db_url: str, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          refresh_s: int = 10, skyportal_url: str | None = None, classifications: str | None = None,
          drift: DriftMonitor | None = None) -> None:
    """Serve the status page (and ``/metrics``) until interrupted.

    Raises
    ------
    ConfigError
        A non-loopback ``host`` without a ``token``.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(f"serving on {host} (not loopback) needs a token: --token-file FILE, "
                          "BRIGHTSCAN_SERVE_TOKEN(_FILE) or systemd's LoadCredential=serve-token")
    import uvicorn

    store = open_readonly(db_url)
    _warn_if_role_can_write(store)
    app = create_app(store, token=token, refresh_s=refresh_s, skyportal_url=skyportal_url,
                     allowed_hosts=allowed_hosts_for(host), classifications=classifications,
                     drift=drift)
    log.info("status page on http://%s:%d/", host, port)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.dispose()


def _warn_if_role_can_write(store: Store) -> None:
    """On PostgreSQL, warn when the page's role could write (``default_transaction_read_only`` is
    only a session default that ``SET TRANSACTION READ WRITE`` undoes; a SELECT-only role is not)."""
    if store.engine.dialect.name != "postgresql":
        return
    from brightscan.autoscan.pages.pgrole import write_privileges

    with store.engine.connect() as conn:
        problems = write_privileges(conn)
    if problems:
        warnings.warn("the status page's database role can write (" + "; ".join(problems[:3])
                      + (f"; {len(problems) - 3} more" if len(problems) > 3 else "")
                      + "): serve it as a read-only role, see `brightscan autoscan grant-readonly`",
                      BrightscanWarning, stacklevel=2)


def _side(blob: bytes) -> int:
    # a square float16 triplet: 63 px for ZTF models, the model's size (48) for Rubin ones
    return int(round((len(blob) // 6) ** 0.5))
