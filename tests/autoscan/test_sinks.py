"""The SkyPortal sink and client against the fake SkyPortal on 127.0.0.1 (which follows the real
handlers), and the webhook and log sinks against a real HTTP server and real files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brightscan.alerts import read_alerts
from brightscan.autoscan.actions import ActionRequest, SinkError, save_extras
from brightscan.autoscan.sinks import LogSink, SkyPortalSink, WebhookSink
from brightscan.autoscan.sinks.skyportal.client import SkyPortalClient
from brightscan.autoscan.sinks.skyportal.followup import FollowupPlan
from brightscan.errors import ConfigError
from tests.autoscan.fakeportal import OTHER_TOKEN, FakeSkyPortal

TOKEN = "s3cret-token-value"
OBJ = "ZTF25aaaaaab"


@pytest.fixture
def alert(real_avro_dir):
    """A real ZTF alert (candidate, prv_candidates with upper limits, cutouts)."""
    return next(iter(read_alerts(sorted(real_avro_dir.glob("*.avro"))[:1])))


def _payload(alert=None, **extra) -> dict:
    payload = {"candid": 1234, "jd": 2461000.6, "score": 0.93, "model_id": "mi_cnn.tiny",
               "model_version": "1", "magpsf": 18.1, "ra": 10.0, "dec": 20.0}
    if alert is not None:
        payload.update(candid=alert.candid, jd=alert.jd, ra=alert.candidate["ra"],
                       dec=alert.candidate["dec"], **save_extras(alert))
    return {**payload, **extra}


def _action(kind: str, obj: str = OBJ, payload: dict | None = None, unconfirmed=False) -> ActionRequest:
    return ActionRequest(kind, obj, f"{kind}:{obj}", payload or _payload(), unconfirmed)


def _plan(**kw) -> FollowupPlan:
    return FollowupPlan(**{"allocation_id": 3, "target_group_ids": (7,), "source_group_ids": (7,),
                           "priority": 4, "observation_type": "IFU", "facility": "SEDM", **kw})


def _sink(portal: FakeSkyPortal, *, timeout=2.0, rate=0.0, followup_timeout=None, **kw) -> SkyPortalSink:
    client = SkyPortalClient(portal.url, TOKEN, timeout=timeout, retries=3, backoff=0.01, rate=rate)
    opts = {"group_ids": [7, 8], "filter_ids": [7], "followup": _plan(), **kw}
    return SkyPortalSink(client, followup_timeout=followup_timeout, **opts)


def _calls(portal: FakeSkyPortal, method: str, path_start: str) -> list:
    return [c for c in portal.calls if c.method == method and c.path.startswith(path_start)]


def _drive(sink: SkyPortalSink, action: ActionRequest, *, tries: int = 60, pause: float = 0.05) -> str:
    """Deliver as the outbox does: again after a retryable failure, carrying ``unconfirmed``."""
    for _ in range(tries):
        try:
            return sink.deliver(action)
        except SinkError as exc:
            if not exc.retryable:
                raise
            action = dataclasses.replace(action, unconfirmed=exc.ambiguous)
            time.sleep(pause)
    raise AssertionError(f"{action.idempotency_key} never done")


# ---- save ---------------------------------------------------------------------------------------
def test_save_posts_candidate_photometry_thumbnails_then_the_source(alert):
    with FakeSkyPortal(TOKEN) as portal:
        detail = _sink(portal).deliver(_action("save", alert.object_id, _payload(alert)))
        order = [(c.method, urllib.parse.urlsplit(c.path).path) for c in portal.calls]
        state = portal.state
    obj = alert.object_id
    assert order == [("GET", f"/api/sources/{obj}"), ("POST", "/api/candidates"),
                     ("GET", "/api/instrument"), ("PUT", "/api/photometry"),
                     ("POST", "/api/thumbnail"), ("POST", "/api/thumbnail"), ("POST", "/api/thumbnail"),
                     ("POST", "/api/sources")]
    assert "saved to groups [7, 8]" in detail
    (cand,) = state.candidates
    assert (cand["obj_id"], cand["filter_id"], cand["passing_alert_id"]) == (obj, 7, alert.candid)
    phot = portal.calls[3].body
    assert set(phot["filter"]) <= {"ztfg", "ztfr", "ztfi"} and set(phot["magsys"]) == {"ab"}
    assert set(phot["zp"]) == {23.9} and phot["group_ids"] == [7, 8] and phot["instrument_id"] == 1
    limits = [e for e in [alert.candidate, *alert.prv_candidates] if e.get("magpsf") is None]
    assert limits and phot["flux"].count(None) == len(limits)  # upper limits: null flux
    assert len(state.photometry) == len(phot["mjd"]) == 1 + len(alert.prv_candidates)
    assert phot["mjd"][-1] == pytest.approx(alert.jd - 2400000.5)
    assert sorted(t["type"] for t in state.thumbnails) == ["new", "ref", "sub"]
    assert {g for (o, g), r in state.sources.items() if o == obj and r["active"]} == {7, 8}


def test_a_repeated_save_checks_and_does_nothing(alert):
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save", alert.object_id, _payload(alert)))
        n = len(portal.calls)
        assert sink.deliver(_action("save", alert.object_id, _payload(alert))) == "already saved to groups [7, 8]"
        assert len(portal.calls) == n + 1  # one GET
        assert portal.thumbnail_types(alert.object_id) == ["new", "ref", "sub"]


def test_a_database_race_answered_already_exists_is_not_a_save(alert):
    """SkyPortal answers 400 '... already exists' when a concurrent save won a unique-key race;
    the whole transaction (our other group) was rolled back, so only a re-check can tell."""
    with FakeSkyPortal(TOKEN, save_race_rate=1.0) as portal:
        sink = _sink(portal)
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("save", alert.object_id, _payload(alert)))
        assert info.value.retryable and "already exists" in str(info.value) and "[7]" in str(info.value)
        assert portal.saved_groups(alert.object_id) == {8}  # the other request's row only
        portal.rates["save_race"] = 0.0
        assert sink.deliver(_action("save", alert.object_id, _payload(alert))).startswith("saved")
        assert portal.saved_groups(alert.object_id) == {7, 8}
        assert portal.thumbnail_types(alert.object_id) == ["new", "ref", "sub"]  # not posted twice


def test_lost_answers_and_dropped_connections_never_duplicate(alert):
    """5xx after the work, dropped connections, 502s: every repeat is settled by a check."""
    with FakeSkyPortal(TOKEN, error_rate=0.2, error_after_rate=0.2, drop_rate=0.1, seed=3) as portal:
        sink = _sink(portal, timeout=2.0)
        objs = [f"ZTF25aaaaa{c}{d}" for c in "bc" for d in "abcdef"]
        for obj in objs:
            payload = _payload(alert)
            for kind in ("save", "followup", "annotation"):
                _drive(sink, _action(kind, obj, payload))
        assert {"error_before", "error_after", "drop"} <= portal.faults()
        assert all(portal.thumbnail_types(o) == ["new", "ref", "sub"] for o in objs)
        for what in ("followups", "annotations", "candidates"):
            assert portal.count(what) == {o: 1 for o in objs}, what
        assert portal.count("photometry") == {o: 1 + len(alert.prv_candidates) for o in objs}
        assert all(portal.saved_groups(o) == {7, 8} for o in objs)


# ---- follow-up ----------------------------------------------------------------------------------
def test_followup_request_is_complete():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal, followup=_plan(validity_days=3, constraints={"not_if_classified": True}))
        sink.deliver(_action("save"))
        detail = sink.deliver(_action("followup"))
        (post,) = _calls(portal, "POST", "/api/followup_request")
    assert detail.endswith("created (submitted)")
    body = post.body
    assert body["target_group_ids"] == [7] and body["source_group_ids"] == [7]
    assert body["not_if_duplicates"] is True and body["not_if_classified"] is True
    payload = body["payload"]
    start, end = (dt.datetime.fromisoformat(payload[k]) for k in ("start_date", "end_date"))
    assert end - start == dt.timedelta(days=3)
    assert abs(start - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) < dt.timedelta(minutes=1)
    assert (payload["priority"], payload["observation_type"]) == (4, "IFU")


def test_payload_is_checked_against_the_facility_form_once_when_the_plan_is_made():
    """A payload the facility's form refuses never makes a plan, so no sink ever sends it."""
    with pytest.raises(ConfigError) as info:
        _plan(priority=9, observation_type="spectrum please")
    assert "priority must be within [1, 5]" in str(info.value) and "observation_type" in str(info.value)
    with pytest.raises(ConfigError, match="observation_choices"):
        _plan(observation_type="Mix 'n Match")
    assert _plan(observation_type="Mix 'n Match", payload={"observation_choices": ["IFU", "r"]})


def test_server_side_form_errors_carry_skyportal_message():
    """No local form (facility unset): SEDM's own validation answers, and we report it verbatim."""
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal, followup=_plan(facility=None, observation_type=None))
        sink.deliver(_action("save"))
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("followup"))
    assert not info.value.retryable
    assert "Error submitting follow-up request: 'observation_type' is a required property" in str(info.value)


def test_facility_rejection_in_a_200_is_a_failure_not_a_creation():
    with FakeSkyPortal(TOKEN, facility=lambda obj, payload: "Rejected: target below horizon") as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("followup"))
        assert not info.value.retryable and "rejected: Rejected: target below horizon" in str(info.value)
        with pytest.raises(SinkError, match="rejected"):  # the check finds it: not sent again
            sink.deliver(_action("followup"))
        assert len(_calls(portal, "POST", "/api/followup_request")) == 1


def test_facility_failure_is_reported_with_the_server_reason():
    def sedm_down(obj, payload):
        raise ConnectionError("SEDM queue unreachable")

    with FakeSkyPortal(TOKEN, facility=sedm_down) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("followup"))
        assert not info.value.retryable
        assert "HTTP 400: Error submitting follow-up request: SEDM queue unreachable" in str(info.value)
        assert portal.followups_for(OBJ)[0]["status"] == "failed to submit: SEDM queue unreachable"


@pytest.mark.parametrize("kind, setup, message", [
    ("followup", {"followup": _plan(allocation_id=42)}, "Allocation ID does not exist or is not accessible."),
    ("followup", {}, "Error submitting follow-up request: Could not find source with ID ZTF25aaaaaab."),
    ("annotation", {}, "Obj ZTF25aaaaaab not found"),
])
def test_real_error_answers_are_carried_to_the_user(kind, setup, message):
    with FakeSkyPortal(TOKEN) as portal:
        plan = setup.get("followup", _plan(source_group_ids=()))
        with pytest.raises(SinkError) as info:
            _sink(portal, followup=plan).deliver(_action(kind))
    assert message in str(info.value) and not info.value.retryable


def test_the_pending_submission_window_never_doubles_a_request():
    """The POST outlasts the client's timeout while the request is listed as pending; SkyPortal's
    not_if_duplicates would let a second POST through (it counts only submitted ones)."""
    with FakeSkyPortal(TOKEN, submit_delay_s=0.8) as portal:
        sink = _sink(portal, followup_timeout=0.2)
        sink.deliver(_action("save"))
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("followup"))
        assert info.value.ambiguous and info.value.retryable
        with pytest.raises(SinkError, match="still 'pending submission'") as info:
            sink.deliver(_action("followup", unconfirmed=True))
        assert info.value.ambiguous
        assert "exists (submitted)" in _drive(sink, _action("followup", unconfirmed=True), pause=0.2)
        assert [r["status"] for r in portal.followups_for(OBJ)] == ["submitted"]
        assert len(_calls(portal, "POST", "/api/followup_request")) == 1


def test_the_fake_lets_a_naive_second_post_through_during_the_window():
    """The race the client must close exists on the server (as in SkyPortal)."""
    with FakeSkyPortal(TOKEN, submit_delay_s=0.5) as portal:
        _sink(portal).deliver(_action("save"))
        body = _plan().request_body(OBJ, dt.datetime(2025, 11, 21))
        client = SkyPortalClient(portal.url, TOKEN, rate=0)
        first = threading.Thread(target=client.post_followup_request, args=(body,))
        first.start()
        time.sleep(0.1)
        second = client.post_followup_request(body)
        first.join()
    assert not second.ignored and len(portal.followups_for(OBJ)) == 2


def _add_request(portal, obj, allocation, status, groups=(7,)):
    with portal.lock:
        portal.state.followups.append({"id": portal.state.next_id(), "obj_id": obj, "allocation_id": allocation,
                                       "payload": {}, "status": status, "requester_id": 5,
                                       "target_group_ids": set(groups), "created_at": time.time(),
                                       "modified": time.time()})


def test_every_page_is_read_and_only_our_allocation_counts():
    with FakeSkyPortal(TOKEN) as portal:
        with portal.lock:
            portal.state.allocations[4] = {"group_id": 1, "facility": "SEDM"}
        sink = _sink(portal, known_for_s=0)  # requests appear after the save's check: its own GET is tested
        sink.deliver(_action("save"))
        for _ in range(150):  # another allocation's requests would fill page 1 of an unfiltered list
            _add_request(portal, OBJ, 4, "submitted")
        for status in ["failed to submit: timeout"] * 60 + ["deleted"] * 60:  # not counted
            _add_request(portal, OBJ, 3, status)
        _add_request(portal, OBJ, 3, "submitted", groups=(5,))  # target groups do not overlap ours
        _add_request(portal, OBJ, 3, "submitted")  # the one that makes ours a duplicate: page 2
        assert sink.deliver(_action("followup")) .endswith("exists (submitted)")
        gets = [urllib.parse.parse_qs(urllib.parse.urlsplit(c.path).query)
                for c in _calls(portal, "GET", "/api/followup_request")]
        assert not _calls(portal, "POST", "/api/followup_request")
    assert [g["pageNumber"] for g in gets] == [["1"], ["2"]] and {g["allocationID"][0] for g in gets} == {"3"}


def test_failed_requests_or_other_target_groups_are_not_ours():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        _add_request(portal, OBJ, 3, "failed to submit: SEDM down")
        _add_request(portal, OBJ, 3, "pending submission", groups=(5,))
        assert sink.deliver(_action("followup")).endswith("created (submitted)")
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        _add_request(portal, OBJ, 3, "submitted", groups=(5,))
        # not ours by Kowalski's rule, so it is sent; SkyPortal's not_if_duplicates (any
        # submitted request of the allocation) then stops it
        assert "already a follow-up request" in sink.deliver(_action("followup"))
        assert len(_calls(portal, "POST", "/api/followup_request")) == 1


def test_a_request_that_failed_after_our_unanswered_post_is_reported_not_resent():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        _add_request(portal, OBJ, 3, "failed to submit: SEDM down")
        with pytest.raises(SinkError, match="not sent again") as info:
            sink.deliver(_action("followup", unconfirmed=True))
        assert not info.value.retryable and not _calls(portal, "POST", "/api/followup_request")


def test_ignored_by_a_constraint_is_done_with_the_reason():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal, group_ids=[7])
        sink.deliver(_action("save"))
        with portal.lock:
            portal.state.classified.add(OBJ)
        detail = sink.deliver(_action("followup"))
    assert detail.startswith("follow-up not requested") and "already been classified" in detail


# ---- annotation ---------------------------------------------------------------------------------
def test_annotation_names_the_model_and_goes_to_our_groups():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        assert sink.deliver(_action("annotation")).endswith("posted")
        assert sink.deliver(_action("annotation")).endswith("already posted")
        (ann,) = portal.state.annotations
    assert ann["origin"] == "brightscan:mi_cnn.tiny:1" and ann["group_ids"] == {7, 8}
    assert ann["data"] == {"score": 0.93, "model_id": "mi_cnn.tiny", "model_version": "1", "candid": 1234}


def test_our_annotation_with_other_data_is_updated_not_duplicated():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        sink.deliver(_action("annotation"))
        assert "updated" in sink.deliver(_action("annotation", payload=_payload(score=0.97)))
        (ann,) = portal.state.annotations
        assert ann["data"]["score"] == 0.97
        assert [c.method for c in _calls(portal, "PUT", "/api/sources")] == ["PUT"]


def test_an_origin_taken_by_an_annotation_we_cannot_read_is_reported():
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        with portal.lock:  # another bot, in a group our token is not in, uses our origin
            portal.state.annotations.append({"id": 999, "obj_id": OBJ, "origin": "brightscan:mi_cnn.tiny:1",
                                             "data": {"x": 1}, "author_id": 2, "group_ids": {99}})
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("annotation"))
        assert not info.value.retryable
        assert "Annotation already exists" in str(info.value) and "annotation_origin" in str(info.value)
        assert portal.count("annotations") == {OBJ: 1}
        other = SkyPortalClient(portal.url, OTHER_TOKEN, rate=0)
        assert [a.origin for a in other.get_annotations(OBJ)] == ["brightscan:mi_cnn.tiny:1"]


# ---- rate limit, errors, secrets --------------------------------------------------------------
def test_429_retry_after_is_honoured_and_counted():
    with FakeSkyPortal(TOKEN, rate=1.0, burst=1, retry_after=True) as portal:
        sink = _sink(portal)  # client-side limiter off: the server's limit answers
        t0 = time.monotonic()
        sink.deliver(_action("save"))
        elapsed = time.monotonic() - t0
        limited = [c for c in portal.calls if c.status == 429]
    assert limited and sink.rate_limited == len(limited)
    assert elapsed >= len(limited) * 1.0  # each 429 said Retry-After: 1
    after = [c for c in portal.calls if c.received_at > limited[0].answered_at]
    assert after[0].received_at - limited[0].answered_at >= 0.95


def test_429_without_retry_after_backs_off_like_nginx_expects():
    with FakeSkyPortal(TOKEN, rate=4.0, burst=1, retry_after=False) as portal:
        sink = _sink(portal)
        sink.deliver(_action("save"))
        assert sink.rate_limited > 0 and portal.saved_groups(OBJ) == {7, 8}


def test_the_client_limiter_keeps_under_skyportal_default_limit():
    with FakeSkyPortal(TOKEN, rate=5.0, burst=10) as portal:
        client = SkyPortalClient(portal.url, TOKEN, rate=5.0, burst=10)
        t0 = time.monotonic()
        for _ in range(25):
            assert client.get_source(OBJ) is None
        elapsed = time.monotonic() - t0
    assert client.rate_limited == 0 and not [c for c in portal.calls if c.status == 429]
    assert elapsed >= (25 - 10) / 5.0 - 0.2


def test_persistent_5xx_raises_retryable():
    with FakeSkyPortal(TOKEN, error_rate=1.0) as portal:
        with pytest.raises(SinkError) as info:
            _sink(portal).deliver(_action("save"))
        assert info.value.retryable and "502" in str(info.value)


def test_bad_token_is_not_retryable_and_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeSkyPortal("the-right-token") as portal:
        sink = _sink(portal)
        with pytest.raises(SinkError) as info:
            sink.deliver(_action("save"))
        assert not info.value.retryable and "HTTP 401: Unauthorized" in str(info.value)
    with FakeSkyPortal(TOKEN, error_rate=0.5, seed=1) as portal:
        sink = _sink(portal)
        for obj in ("ZTF25aaaaaba", "ZTF25aaaaabb", "ZTF25aaaaabc"):
            _drive(sink, _action("save", obj))
    assert caplog.records, "debug logging should have recorded the retries"
    assert TOKEN not in caplog.text and TOKEN not in str(info.value) and TOKEN not in repr(sink)
    assert TOKEN not in repr(sink.client)


# ---- webhook and log ----------------------------------------------------------------------------
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


def test_a_pending_request_is_waited_for_until_its_end_date():
    """The SkyPortal sink tells the outbox how long a pending request may still be decided: its
    end_date (UTC, as sent), or nothing when the request has none readable."""
    from brightscan.autoscan.sinks.skyportal.client import FollowupRequest
    from brightscan.autoscan.sinks.skyportal.sink import _judge_existing

    request = FollowupRequest(5, "ZTF21aaaaaaa", 3, "pending submission", frozenset({7}),
                              {"end_date": "2025-11-28T00:00:00.000000"})
    with pytest.raises(SinkError) as info:
        _judge_existing([request], unconfirmed=False)
    assert info.value.retryable and info.value.wait_until == dt.datetime(2025, 11, 28, tzinfo=dt.timezone.utc).timestamp()
    bare = FollowupRequest(6, "ZTF21aaaaaaa", 3, "pending submission", frozenset({7}), {})
    with pytest.raises(SinkError) as info:
        _judge_existing([bare], unconfirmed=False)
    assert info.value.wait_until is None


# ---- requests an object costs ---------------------------------------------------------------------
def _requests_of(portal: FakeSkyPortal, obj: str) -> list[tuple[str, str]]:
    def about(c) -> bool:
        path = urllib.parse.unquote(c.path)
        return obj in path or (isinstance(c.body, dict) and obj in (c.body.get("id"), c.body.get("obj_id")))
    return [(c.method, urllib.parse.urlsplit(c.path).path) for c in portal.calls if about(c)]


@pytest.mark.parametrize("known_for_s, expected", [(0.0, 11), (60.0, 9)])
def test_an_object_costs_nine_requests_when_the_saves_check_answers_the_others(alert, known_for_s, expected):
    """The save's GET /api/sources/{obj} already says the object has no follow-up request of our
    allocation and no annotation of our origin: the follow-up and the annotation go straight to
    their POST (11 -> 9 requests), with the same result on the server."""
    with FakeSkyPortal(TOKEN) as portal:
        sink = _sink(portal, known_for_s=known_for_s, instrument_id=1)
        objs = ["ZTF25aaaaacz", "ZTF25aaaaacy"]
        for obj in objs:
            for kind in ("save", "followup", "annotation"):
                assert not sink.deliver(_action(kind, obj, _payload(alert))).startswith("follow-up not")
        for obj in objs:
            calls = _requests_of(portal, obj)
            assert len(calls) == expected, calls
            assert calls.count(("POST", "/api/thumbnail")) == 3
        for what in ("followups", "annotations", "candidates"):
            assert portal.count(what) == {o: 1 for o in objs}, what
        gets = {path for method, path in _requests_of(portal, objs[0]) if method == "GET"}
        assert gets == ({f"/api/sources/{objs[0]}"} if known_for_s else
                        {f"/api/sources/{objs[0]}", "/api/followup_request", f"/api/sources/{objs[0]}/annotations"})


def test_the_saves_answer_is_used_once_fresh_and_never_for_an_unconfirmed_attempt(alert):
    """What the save read stands in for the next check only while fresh, once, and not after an
    attempt whose outcome is unknown; an existing request or annotation of ours is always looked up."""
    with FakeSkyPortal(TOKEN) as portal:
        now = [0.0]
        sink = _sink(portal, known_for_s=60.0)
        sink.known._clock = lambda: now[0]
        sink.deliver(_action("save"))
        now[0] = 61.0  # stale: the follow-up asks
        assert sink.deliver(_action("followup")).endswith("created (submitted)")
        assert len(_calls(portal, "GET", "/api/followup_request")) == 1
        now[0] = 0.0
        sink.deliver(_action("save", "ZTF25aaaaacx"))
        # unconfirmed: an earlier POST may have landed, so SkyPortal is asked even with a fresh answer
        assert sink.deliver(_action("annotation", "ZTF25aaaaacx", unconfirmed=True)).endswith("posted")
        assert len(_calls(portal, "GET", "/api/sources/ZTF25aaaaacx/annotations")) == 1
        # once: the part was handed out, a second delivery asks
        assert sink.deliver(_action("annotation", "ZTF25aaaaacx")).endswith("already posted")
        assert len(_calls(portal, "GET", "/api/sources/ZTF25aaaaacx/annotations")) == 2
        # an object that already has our annotation: the save's answer lists it, so it is looked up
        sink.deliver(_action("save", "ZTF25aaaaacx"))
        assert sink.deliver(_action("annotation", "ZTF25aaaaacx", _payload(score=0.5))).endswith("updated "
                                                                                                   "(its data or groups differed)")
        assert len(_calls(portal, "GET", "/api/sources/ZTF25aaaaacx/annotations")) == 3
        assert portal.count("annotations") == {"ZTF25aaaaacx": 1}


def test_known_state_is_bounded_and_forgets_the_oldest():
    from brightscan.autoscan.sinks.skyportal.client import SourceInfo
    from brightscan.autoscan.sinks.skyportal.known import KnownState

    known = KnownState(60.0, max_objects=3)
    for i in range(5):
        known.remember(f"ZTF25aaaaa{i}", None)
    assert known.take("ZTF25aaaaa0", "followup") is None and known.take("ZTF25aaaaa4", "followup") == frozenset()
    older = SourceInfo("ZTF25aaaaa9", frozenset(), frozenset())  # a SkyPortal whose answer lacks the lists
    known.remember("ZTF25aaaaa9", older)
    assert known.take("ZTF25aaaaa9", "annotation") is None
    assert KnownState(0.0).take("x", "followup") is None
