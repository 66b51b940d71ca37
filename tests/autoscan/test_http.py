"""The sinks' HTTP call follows no redirect, and a token goes over plain HTTP only to this machine."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brightscan.autoscan.actions import ActionRequest, SinkError
from brightscan.autoscan.build import build_sink
from brightscan.autoscan.config import load_config
from brightscan.autoscan.secrets import require_https
from brightscan.autoscan.sinks import WebhookSink
from brightscan.autoscan.sinks.skyportal.client import SkyPortalClient, SkyPortalError
from brightscan.errors import ConfigError

TOKEN = "s3cr3t-token"


class _Server:
    """A loopback server: ``redirect_to`` set, it answers every request with a 302 there; else it
    records the requests it gets (method, path, Authorization header)."""

    def __init__(self, redirect_to: str | None = None):
        self.seen: list[tuple[str, str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append((self.command, self.path, self.headers.get("Authorization")))
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    body = b'{"status": "success", "data": {}}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def elsewhere():
    server = _Server()
    yield server
    server.close()


@pytest.fixture
def redirecting(elsewhere):
    server = _Server(redirect_to=f"{elsewhere.url}/steal")
    yield server
    server.close()


def test_a_redirected_webhook_post_is_a_failure_naming_the_location_and_nothing_is_sent_there(
        redirecting, elsewhere):
    sink = WebhookSink(f"{redirecting.url}/hook", retries=0, headers={"Authorization": f"token {TOKEN}"})
    action = ActionRequest("save", "ZTF21aaaaaaa", "save:ZTF21aaaaaaa", {"score": 0.9})
    with pytest.raises(SinkError) as info:
        sink.deliver(action)
    assert not info.value.retryable  # never counted as success, never retried blindly
    assert f"redirect to {elsewhere.url}/steal not followed" in str(info.value)
    assert [m for m, _, _ in redirecting.seen] == ["POST"]
    assert elsewhere.seen == []  # neither the body nor the Authorization header went there


def test_a_redirected_skyportal_call_is_an_error_and_the_token_stays_home(redirecting, elsewhere):
    client = SkyPortalClient(redirecting.url, TOKEN, retries=0, rate=0.0)
    with pytest.raises(SkyPortalError) as info:
        client.get_source("ZTF21aaaaaaa")
    assert info.value.status == 302 and not info.value.retryable
    assert "not followed" in str(info.value) and TOKEN not in str(info.value)
    assert redirecting.seen and redirecting.seen[0][2] == f"token {TOKEN}"
    assert elsewhere.seen == []


@pytest.mark.parametrize("url, ok", [
    ("https://fritz.science", True),
    ("http://127.0.0.1:5000", True),
    ("http://localhost:5000/api", True),
    ("http://[::1]:5000", True),
    ("http://fritz.science", False),
    ("http://10.0.0.5:5000", False),
    ("ftp://fritz.science", False),
    ("https://", False),
])
def test_https_is_required_except_on_this_machine(url, ok):
    if ok:
        assert require_https(url, "url") == url
    else:
        with pytest.raises(ConfigError, match="must be https"):
            require_https(url, "url")


def test_a_plain_http_sink_url_to_another_machine_is_refused_when_the_sink_is_built(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIGHTSCAN_SKYPORTAL_TOKEN", TOKEN)
    path = tmp_path / "a.toml"
    path.write_text('[sink]\nkind = "skyportal"\n[sink.skyportal]\nurl = "http://user:pw@fritz.science"\n'
                    'group_ids = [1]\nfilter_ids = [1]\n')
    with pytest.raises(ConfigError, match=r"\[sink.skyportal\] url .*must be https") as info:
        build_sink(load_config(path).sink)
    assert "pw" not in str(info.value) and TOKEN not in str(info.value)
    path.write_text('[sink]\nkind = "webhook"\n[sink.webhook]\nurl = "http://example.org/hook"\n')
    with pytest.raises(ConfigError, match=r"\[sink.webhook\] url .*must be https"):
        build_sink(load_config(path).sink)
