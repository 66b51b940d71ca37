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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The status app served by uvicorn on loopback in a thread (a real HTTP server)."""

    def __init__(self, db_url: str, **kwargs) -> None:
        from brightscan.autoscan.pages.status import create_app

        self.store = open_readonly(db_url)
        self.port = _free_port()
        config = uvicorn.Config(create_app(self.store, **kwargs), host="127.0.0.1", port=self.port,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started
        self.url = f"http://127.0.0.1:{self.port}"

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
        html = httpx.get(f"{server.url}/?token=s3cret").text
        assert 'http-equiv="refresh"' in html and "/object/" in html
        oid = truth[0]["objectId"]
        one = httpx.get(f"{server.url}/object/{oid}.json?token=s3cret").json()
        assert one["source"]["object_id"] == oid and len(one["actions"]) == 3
        png = httpx.get(f"{server.url}/object/{oid}/triplet.png?token=s3cret")
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert httpx.get(f"{server.url}/object/ZTFnothing?token=s3cret").status_code == 404
        with server.store.engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.execute(sa.text("DELETE FROM alerts"))
    finally:
        server.stop()


def test_serve_refuses_an_open_address_without_a_token(tmp_path):
    from brightscan.autoscan.pages.status import serve

    with pytest.raises(ConfigError, match="needs --token"):
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
