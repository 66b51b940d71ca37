"""``autoscan summary`` and ``autoscan serve``: the night page and the live status page, over a
real database written by ``autoscan run``, through HTTP and in headless Chromium."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from brightscan.autoscan.config import AutoscanConfig, LogSinkSettings, PolicyConfig, ServiceConfig, SinkConfig
from brightscan.autoscan.write.runner import run_autoscan
from brightscan.autoscan.store import actions, open_readonly, open_store
from brightscan.errors import ConfigError

from browser import PHONE, check_layout

from .conftest import NIGHT

pytest.importorskip("starlette", reason="the status page needs the web extra")
uvicorn = pytest.importorskip("uvicorn", reason="the status page needs the web extra")


def _replay(night_dir, model, db_url, tmp_path):
    config = AutoscanConfig(db_url=db_url, policy=PolicyConfig(name="gt1", params={"threshold": 0.0}),
                            sink=SinkConfig(kind="log", log=LogSinkSettings(path=str(tmp_path / "actions.jsonl"))),
                            service=ServiceConfig(speedup=float("inf")))
    return run_autoscan(config, f"replay:{night_dir}", model)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    """The status app served by uvicorn on loopback in a thread (a real HTTP server)."""

    def __init__(self, db_url: str, host: str = "127.0.0.1", **kwargs) -> None:
        from brightscan.autoscan.pages.status import create_app

        self.store = open_readonly(db_url)
        self.port = _free_port(host)
        config = uvicorn.Config(create_app(self.store, **kwargs), host=host, port=self.port,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started
        self.url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.store.dispose()


def _add_pending_action(db_url: str, object_id: str) -> None:
    """Write one new pending action as the outbox would (the service's own transaction shape)."""
    store = open_store(db_url)
    now = time.time()
    with store.transaction() as conn:
        conn.execute(actions.insert().values(kind="annotation", object_id=object_id,
                                             idempotency_key=f"test-{object_id}-{now}", payload={}, state="pending",
                                             attempts=1, last_error="HTTP 503 from SkyPortal",
                                             next_attempt_at=now + 60, created_at=now, updated_at=now))
    store.dispose()


def test_night_page_in_a_browser(browser, night, tiny_model, tmp_path):
    from brightscan.autoscan.pages.night import write_summary

    night_dir, truth = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    objects = sorted({r["objectId"] for r in truth})
    _add_pending_action(db, objects[0])
    page_path = write_summary(db, NIGHT, tmp_path / "night-page", skyportal_url="https://fritz.example/")
    pages = check_layout(browser, page_path.as_uri())
    page = pages[PHONE]
    saved = page.rows("#saved + p + .scroll table")
    assert sorted(r.split("\t")[0] for r in saved) == objects
    assert len(page.images("section.object img[alt^=triplet]")) == len(objects)
    assert len(page.images("section.object img[alt^='light curve']")) == len(objects)
    attention = page.rows("#attention ~ .scroll table")
    assert attention and attention[0].startswith(objects[0]) and "pending" in attention[0]
    colour = page.page.eval_on_selector("#attention ~ .scroll tr.pending td", "td => getComputedStyle(td).backgroundColor")
    assert colour != "rgba(0, 0, 0, 0)"
    link = page.page.get_attribute(f"#{objects[0]} a[href*='fritz']", "href")
    assert link == f"https://fritz.example/source/{objects[0]}"
    # sortable: clicking "score" orders the rows by score
    page.page.click("#saved + p + .scroll th:has-text('score')")
    scores = [float(r.split("\t")[8]) for r in page.rows("#saved + p + .scroll table")]
    assert scores == sorted(scores)
    for p in pages.values():
        p.close()


def test_status_page_http_json_and_read_only(night, tiny_model, tmp_path):
    night_dir, truth = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    server = Server(db, token="s3cret")
    try:
        assert httpx.get(f"{server.url}/").status_code == 401
        assert httpx.get(f"{server.url}/status.json", headers={"Authorization": "Bearer nope"}).status_code == 401
        data = httpx.get(f"{server.url}/status.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert data["alerts_total"] == len(truth) and data["night"] == NIGHT
        assert {d["object_id"] for d in data["decisions"]} == {r["objectId"] for r in truth}
        bearer = {"Authorization": "Bearer s3cret"}
        html = httpx.get(f"{server.url}/", headers=bearer).text
        assert 'http-equiv="refresh"' in html and "/object/" in html
        oid = truth[0]["objectId"]
        one = httpx.get(f"{server.url}/object/{oid}.json", headers=bearer).json()
        assert one["source"]["object_id"] == oid and len(one["actions"]) == 3
        png = httpx.get(f"{server.url}/object/{oid}/triplet.png", headers=bearer)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert httpx.get(f"{server.url}/object/ZTFnothing", headers=bearer).status_code == 404
        with server.store.engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.execute(sa.text("DELETE FROM alerts"))
    finally:
        server.stop()


def test_serve_refuses_an_open_address_without_a_token(tmp_path):
    from brightscan.autoscan.pages.status import serve

    with pytest.raises(ConfigError, match="needs a token: --token-file"):
        serve(f"sqlite:///{tmp_path / 'x.db'}", host="0.0.0.0")


def test_status_page_updates_after_a_new_action(browser, night, tiny_model, tmp_path):
    night_dir, truth = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    server = Server(db, refresh_s=1)
    try:
        pages = check_layout(browser, server.url + "/", shot=None)
        page = pages[PHONE].page
        assert page.inner_text("#pending") == "0"
        _add_pending_action(db, truth[0]["objectId"])
        page.wait_for_function("document.querySelector('#pending').innerText === '1'", timeout=15000)
        assert truth[0]["objectId"] in page.inner_text("table")  # the action is listed, with its error
        assert "HTTP 503" in page.inner_text("main")
        for p in pages.values():
            p.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_status_page_beside_autoscan_run(db_url, night, tiny_model, tmp_path):
    """``autoscan run`` writes (a replay at a real pace) while the page reads the same database."""
    night_dir, truth = night
    run = subprocess.Popen(
        [sys.executable, "-m", "brightscan", "autoscan", "run", "--source", f"replay:{night_dir}",
         "--model", str(tiny_model), "--db", db_url, "--policy", "gt1", "--sink", "log", "--speedup", "3000",
         "--json"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # the page can open once the run has created the schema
            try:
                server = Server(db_url)
                break
            except Exception:  # noqa: BLE001 - the database is still being created
                time.sleep(0.2)
        seen = []
        while run.poll() is None and time.time() < deadline:
            response = httpx.get(f"{server.url}/status.json", timeout=10)
            assert response.status_code == 200
            seen.append(response.json()["alerts_total"])
            time.sleep(0.2)
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        final = httpx.get(f"{server.url}/status.json").json()
        assert final["alerts_total"] == len(truth)
        assert seen == sorted(seen) and len(set(seen)) >= 2, seen  # it watched the numbers grow
        server.stop()
    finally:
        if run.poll() is None:
            run.kill()


def test_absurd_stored_values_and_unusual_object_ids_never_make_a_page_fail(night, tiny_model, tmp_path):
    """An older database can hold what today's readers refuse: a jd of 1e12, an objectId with '/'.
    The night page, the status page and its JSON still answer, and no file lands outside the page."""
    from brightscan.autoscan.pages.night import write_summary
    from brightscan.autoscan.store import alerts, sources

    night_dir, truth = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    odd = "ZTF/../evil"
    store = open_store(db)
    with store.transaction() as conn:
        first = truth[0]["objectId"]
        conn.execute(sources.update().where(sources.c.object_id == first).values(object_id=odd))
        conn.execute(alerts.update().where(alerts.c.object_id == first).values(object_id=odd))
        row = conn.execute(sa.select(alerts).limit(1)).mappings().one()
        conn.execute(alerts.insert().values({**{k: v for k, v in row.items() if k != "id"},
                                             "candid": 1, "jd": 1e12, "arrived_at": 1e300}))
    store.dispose()
    page = write_summary(db, NIGHT, tmp_path / "night")
    assert page.is_file() and not (tmp_path / "evil").exists() and not (tmp_path / "night" / "source_ZTF").exists()
    assert any(p.name.startswith("source_ZTF_.._evil-") for p in (tmp_path / "night").iterdir())
    server = Server(db)
    try:
        data = httpx.get(f"{server.url}/status.json")
        assert data.status_code == 200 and data.json()["night"] == NIGHT  # the absurd jd is not "tonight"
        assert httpx.get(f"{server.url}/").status_code == 200
    finally:
        server.stop()


def test_status_page_answers_only_its_own_host_and_sends_no_referrer(night, tiny_model, tmp_path):
    """DNS rebinding: a request naming another Host is refused even on the token-less loopback page;
    every answer says Referrer-Policy: no-referrer."""
    from brightscan.autoscan.pages.status import allowed_hosts_for

    night_dir, _ = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    server = Server(db)
    try:
        ok = httpx.get(f"{server.url}/status.json")
        assert ok.status_code == 200 and ok.headers["referrer-policy"] == "no-referrer"
        assert httpx.get(f"http://localhost:{server.port}/status.json").status_code == 200
        evil = httpx.get(f"{server.url}/status.json", headers={"Host": f"rebind.example:{server.port}"})
        assert evil.status_code == 400 and "alerts_total" not in evil.text
    finally:
        server.stop()
    assert allowed_hosts_for("10.1.2.3") == ["10.1.2.3", "127.0.0.1", "::1", "localhost"]
    assert allowed_hosts_for("0.0.0.0") == ["*"]


TOKEN = "Zq7-status-page-token"


def _login(url: str, token: str) -> httpx.Response:
    return httpx.post(f"{url}/login", data={"token": token}, follow_redirects=False)


def test_login_form_sets_a_strict_cookie_and_no_page_or_location_holds_the_token(night, tiny_model, tmp_path):
    """The token is posted once in a form body; after that a cookie (an HMAC of the token, not the
    token) opens every page, and no answer's body or header carries the token."""
    night_dir, truth = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    server = Server(db, token=TOKEN)
    seen: list[httpx.Response] = []
    try:
        first = httpx.get(f"{server.url}/")
        assert first.status_code == 401 and 'action="/login"' in first.text  # the form, not a bare 401
        wrong = _login(server.url, TOKEN[:-1] + "x")
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        ok = _login(server.url, TOKEN)
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on loopback; see the https test below
        jar = {"brightscan_session": ok.cookies["brightscan_session"]}
        assert ok.cookies["brightscan_session"] != TOKEN
        oid = truth[0]["objectId"]
        for path in ("/", "/status.json", f"/object/{oid}", f"/object/{oid}.json", f"/object/{oid}/triplet.png"):
            answer = httpx.get(f"{server.url}{path}", cookies=jar)
            assert answer.status_code == 200, path
            seen.append(answer)
        status_html = seen[0].text
        assert f'href="/object/{oid}"' in status_html and "token=" not in status_html  # links carry nothing
        # a token in the address is refused, with the way in, and is not echoed
        in_url = httpx.get(f"{server.url}/status.json?token={TOKEN}")
        assert in_url.status_code == 400 and "/login" in in_url.text
        in_url_html = httpx.get(f"{server.url}/?token={TOKEN}", cookies=jar)
        assert in_url_html.status_code == 400 and 'action="/login"' in in_url_html.text
        out = httpx.post(f"{server.url}/logout", cookies=jar)
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
        seen += [first, wrong, ok, in_url, in_url_html, out]
        for answer in seen:
            assert TOKEN not in answer.text and TOKEN.encode() not in answer.content
            assert all(TOKEN not in v for v in answer.headers.values()), answer.headers
    finally:
        server.stop()


def test_login_cookie_is_secure_over_https_and_bodies_are_bounded(tmp_path):
    """Behind a TLS proxy (scheme https) the cookie also says Secure; an oversized or malformed
    login body is a refusal, never buffered whole or an error."""
    from starlette.testclient import TestClient

    from brightscan.autoscan.pages.access import MAX_FORM_BYTES
    from brightscan.autoscan.pages.status import create_app

    db = f"sqlite:///{tmp_path / 'e.db'}"
    open_store(db).dispose()
    store = open_readonly(db)
    try:
        client = TestClient(create_app(store, token=TOKEN), base_url="https://localhost")
        ok = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert ok.status_code == 303 and "; Secure" in ok.headers["set-cookie"]
        big = client.post("/login", content=b"token=" + b"a" * (MAX_FORM_BYTES + 1),
                          headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
        assert big.status_code == 401 and "set-cookie" not in big.headers
        twice = client.post("/login", content=f"token={TOKEN}&token=x".encode(),
                            headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
        assert twice.status_code == 401
        as_json = client.post("/login", json={"token": TOKEN}, follow_redirects=False)
        assert as_json.status_code == 401
    finally:
        store.dispose()


def test_log_in_through_the_form_in_a_browser_and_navigate(browser, night, tiny_model, tmp_path):
    """Chromium: the form logs in, the cookie carries the session through links and reloads, and
    no address the browser visits holds the token."""
    night_dir, truth = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    server = Server(db, token=TOKEN, refresh_s=1)
    visited: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()
        page.on("request", lambda r: visited.append(r.url))
        page.goto(server.url + "/")
        assert page.locator("form[action='/login']").is_visible()
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#alerts-total")
        cookie = next(c for c in context.cookies() if c["name"] == "brightscan_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != TOKEN
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
        oid = truth[0]["objectId"]
        page.click(f"a[href='/object/{oid}']")
        page.wait_for_url(f"**/object/{oid}")
        assert oid in page.inner_text("header") and page.locator("img").first.evaluate("e => e.naturalWidth") > 0
        page.click("text=← status")
        page.wait_for_selector("#alerts-total")
        page.wait_for_timeout(2500)  # a meta-refresh reload or two, still logged in
        assert page.locator("#alerts-total").is_visible()
        page.click("text=log out")
        page.wait_for_selector("form[action='/login']")
        assert TOKEN not in page.content()
        assert visited and all(TOKEN not in u for u in visited), visited
    finally:
        context.close()
        server.stop()


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1 cannot be bound)")
def test_page_bound_to_ipv6_loopback_answers_its_bracketed_host(night, tiny_model, tmp_path):
    """A page on ::1 answers ``Host: [::1]:PORT`` (and other spellings of ::1), still refuses others."""
    night_dir, _ = night
    db = f"sqlite:///{tmp_path / 'a.db'}"
    _replay(night_dir, tiny_model, db, tmp_path)
    from brightscan.autoscan.pages.status import allowed_hosts_for

    server = Server(db, host="::1", allowed_hosts=allowed_hosts_for("::1"))
    try:
        ok = httpx.get(f"{server.url}/status.json")
        assert ok.status_code == 200 and ok.json()["alerts_total"] > 0
        long_form = httpx.get(f"{server.url}/status.json", headers={"Host": f"[0:0:0:0:0:0:0:1]:{server.port}"})
        assert long_form.status_code == 200
        assert httpx.get(f"{server.url}/status.json", headers={"Host": "[::1]"}).status_code == 200
        for bad in (f"rebind.example:{server.port}", f"[::2]:{server.port}", "[::1", "[nothex]:80", ""):
            assert httpx.get(f"{server.url}/status.json", headers={"Host": bad}).status_code == 400, bad
    finally:
        server.stop()


def test_host_of_parses_names_ipv4_and_bracketed_ipv6():
    from brightscan.autoscan.pages.access import host_of

    assert host_of("[::1]:8765") == "::1" and host_of("[0:0::1]") == "::1"
    assert host_of("LocalHost:80") == "localhost" and host_of("127.0.0.1:1") == "127.0.0.1"
    assert host_of("[::1]:80:90") is None and host_of("a b") is None and host_of("[x]") is None
    assert host_of("user@evil:80") is None and host_of(None) is None


@pytest.mark.parametrize("how", ["token-file", "credentials"])
def test_serve_reads_its_token_from_a_file_or_systemd_credentials_and_never_prints_it(tmp_path, how):
    """``autoscan serve`` as the docs' systemd unit runs it: the token from ``--token-file`` or
    ``$CREDENTIALS_DIRECTORY/serve-token`` (never argv), required, and absent from its output."""
    import os

    db = f"sqlite:///{tmp_path / 'a.db'}"
    open_store(db).dispose()
    secret = tmp_path / "serve-token"
    secret.write_text(TOKEN + "\n")
    secret.chmod(0o600)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIGHTSCAN_SERVE", "CREDENTIALS_DIRECTORY"))}
    args = [sys.executable, "-m", "brightscan", "autoscan", "serve", "--db", db, "--port", str(port)]
    if how == "token-file":
        args += ["--token-file", str(secret)]
    else:
        env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, answer = time.time() + 30, None
        while time.time() < deadline and answer is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/status.json")
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/status.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["alerts_total"] == 0
        assert _login(f"http://127.0.0.1:{port}", TOKEN).status_code == 303
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert TOKEN not in out + err and TOKEN not in " ".join(args)


def test_serve_refuses_a_bad_token_file_naming_it_not_its_value(tmp_path):
    from typer.testing import CliRunner

    from brightscan.cli.main import app

    db = f"sqlite:///{tmp_path / 'a.db'}"
    open_store(db).dispose()
    bad = tmp_path / "token"
    bad.write_text(f"{TOKEN} with a space\n")
    bad.chmod(0o600)
    result = CliRunner().invoke(app, ["autoscan", "serve", "--db", db, "--token-file", str(bad)], env={})
    assert result.exit_code != 0 and str(bad) in result.output and TOKEN not in result.output
