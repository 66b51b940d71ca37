"""Sinks against real HTTP servers on 127.0.0.1 (the fake SkyPortal) and real files."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.autoscan.fakeportal import FakeSkyPortal
from brightscan.autoscan.sinks import ActionRequest, LogSink, SinkError, SkyPortalSink, WebhookSink

TOKEN = "s3cret-token-value"
OBJ = "ZTF25aaaaaab"


def _action(kind: str, obj: str = OBJ) -> ActionRequest:
    return ActionRequest(kind, obj, f"{kind}:{obj}", {"score": 0.93, "model_id": "mi_cnn.tiny",
                                                      "model_version": "1", "ra": 10.0, "dec": 20.0})


def _sink(portal: FakeSkyPortal, **kw) -> SkyPortalSink:
    opts = {"group_ids": [7, 8], "allocation_id": 3, "followup_payload": {"priority": 5},
            "timeout": 0.3, "retries": 3, "backoff": 0.01, **kw}
    return SkyPortalSink(portal.url, TOKEN, **opts)


def _posts(portal: FakeSkyPortal, path_start: str) -> list:
    return [c for c in portal.calls if c.method == "POST" and c.path.startswith(path_start)]


def test_skyportal_save_followup_annotation_follow_the_api():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        for kind in ("save", "followup", "annotation"):
            sink.deliver(_action(kind))
        (save,) = _posts(portal, "/api/sources")[:1]
        assert save.body == {"id": OBJ, "group_ids": [7, 8], "ra": 10.0, "dec": 20.0}
        (fu,) = _posts(portal, "/api/followup_request")
        assert fu.body == {"obj_id": OBJ, "allocation_id": 3, "payload": {"priority": 5},
                           "not_if_duplicates": True, "not_if_classified": True,
                           "not_if_spectra_exist": True}
        (ann,) = _posts(portal, f"/api/sources/{OBJ}/annotations")
        assert ann.body == {"origin": "brightscan",
                            "data": {"score": 0.93, "model_id": "mi_cnn.tiny", "model_version": "1"}}
        assert portal.effective_saves() == {OBJ: 1}
        assert portal.effective_followups() == {OBJ: 1}


def test_delivering_twice_posts_once():
    """The check-before-write: a repeat finds the effect and sends no second POST."""
    with FakeSkyPortal(TOKEN, idempotent=False) as portal:
        sink = _sink(portal)
        for kind in ("save", "followup", "annotation", "save", "followup", "annotation"):
            detail = sink.deliver(_action(kind))
        assert "already" in detail
        assert len([c for c in portal.calls if c.method == "POST"]) == 3
        assert portal.effective_saves() == {OBJ: 1}
        assert portal.effective_followups() == {OBJ: 1}
        assert portal.effective_annotations() == {OBJ: 1}


def _hide_gets(portal: FakeSkyPortal, prefix: str, empty: object) -> None:
    """Make the check-before-write see nothing, so the POST path is exercised."""
    real = portal.handle
    portal.handle = lambda m, p, b: (200, {"status": "success", "data": empty}) \
        if m == "GET" and p.startswith(prefix) else real(m, p, b)


def test_already_existing_annotation_answer_counts_as_done():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("annotation"))
        _hide_gets(portal, f"/api/sources/{OBJ}/annotations", [])
        assert sink.deliver(_action("annotation")) == "annotation already posted"
        assert _posts(portal, f"/api/sources/{OBJ}/annotations")[-1].status == 400
        assert portal.effective_annotations() == {OBJ: 1}


def test_followup_ignored_by_skyportal_is_done():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        sink.deliver(_action("followup"))
        _hide_gets(portal, "/api/followup_request", {"followup_requests": []})
        assert "ignored" in sink.deliver(_action("followup"))
        assert _posts(portal, "/api/followup_request")[-1].status == 200
        assert portal.effective_followups() == {OBJ: 1}


def test_lost_answers_never_duplicate_even_without_server_idempotence():
    """5xx before and *after* the work: the retry re-checks, so no second save/request."""
    with FakeSkyPortal(TOKEN, error_rate=0.3, error_after_rate=0.3, seed=3, idempotent=False) as portal:
        sink = _sink(portal, retries=12)
        objs = [f"ZTF25aaaaa{c}{d}" for c in "bc" for d in "abcdef"]
        for obj in objs:
            for kind in ("save", "followup", "annotation"):
                sink.deliver(_action(kind, obj))
        assert {"error_before", "error_after"} <= {c.fault for c in portal.calls}
        assert portal.effective_saves() == {o: 1 for o in objs}
        assert portal.effective_followups() == {o: 1 for o in objs}
        assert portal.effective_annotations() == {o: 1 for o in objs}


def test_timeouts_are_retried_and_skyportal_semantics_absorb_the_race():
    """A POST that times out may still be applied later (in flight when the retry checks);
    SkyPortal's own idempotence (groups, not_if_duplicates, annotation origin) absorbs it."""
    with FakeSkyPortal(TOKEN, timeout_rate=0.3, sleep_s=0.25, seed=5) as portal:
        sink = _sink(portal, timeout=0.1, retries=12)
        objs = [f"ZTF25aaaaab{d}" for d in "abcd"]
        for obj in objs:
            for kind in ("save", "followup", "annotation"):
                sink.deliver(_action(kind, obj))
        assert "timeout" in {c.fault for c in portal.calls}
        assert portal.effective_saves() == {o: 1 for o in objs}
        assert portal.effective_followups() == {o: 1 for o in objs}
        assert portal.effective_annotations() == {o: 1 for o in objs}


def test_persistent_5xx_raises_retryable():
    with FakeSkyPortal(TOKEN, error_rate=1.0) as portal:
        with pytest.raises(SinkError) as info:
            _sink(portal, retries=1).deliver(_action("save"))
        assert info.value.retryable


def test_bad_token_is_not_retryable_and_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeSkyPortal("the-right-token") as portal:
        sink = _sink(portal)
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("save"))
        assert not info.value.retryable and "401" in str(info.value)
    with FakeSkyPortal(TOKEN, error_rate=0.5, seed=1) as portal:
        sink = _sink(portal, retries=20)
        for obj in ("ZTF25aaaaaba", "ZTF25aaaaabb", "ZTF25aaaaabc"):
            sink.deliver(_action("save", obj))
    assert caplog.records, "debug logging should have recorded the retries"
    assert TOKEN not in caplog.text and TOKEN not in str(info.value) and TOKEN not in repr(sink)


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.headers.get("Idempotency-Key"), body))
        self.send_response(204)
        self.end_headers()


def test_webhook_posts_json_with_idempotency_key():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/hook?x=1", timeout=2)
        sink.deliver(_action("save"))
    finally:
        server.shutdown()
        server.server_close()
    ((key, body),) = _Hook.received
    assert key == f"save:{OBJ}" and body["objectId"] == OBJ and body["payload"]["score"] == 0.93


@pytest.mark.parametrize("name", ["actions.jsonl", "actions.csv"])
def test_log_sink_writes_each_key_once_across_restarts(tmp_path, name):
    path = tmp_path / name
    LogSink(path).deliver(_action("save"))
    LogSink(path).deliver(_action("followup"))
    assert "already" in LogSink(path).deliver(_action("save"))  # a fresh process re-reads the file
    lines = path.read_text().strip().splitlines()
    assert len(lines) == (3 if name.endswith(".csv") else 2)


def test_log_sink_survives_a_line_torn_by_a_kill(tmp_path):
    path = tmp_path / "actions.jsonl"
    LogSink(path).deliver(_action("save"))
    with open(path, "a") as fh:
        fh.write('{"kind": "followup", "idempot')  # the process died here
    LogSink(path).deliver(_action("followup"))
    keys = [json.loads(x)["idempotency_key"] for x in path.read_text().splitlines() if x.endswith("}")]
    assert keys == [f"save:{OBJ}", f"followup:{OBJ}"]
