"""Pieces of the SkyPortal client that need no server: the token bucket, ``Retry-After``, the
follow-up rules, and the photometry SkyPortal is sent (checked by hand against SkyPortal's own
conversion: flux in µJy at an AB zero point of 23.9)."""

from __future__ import annotations

import datetime as dt
import email.utils
import math

import pytest

from brightscan.autoscan.sinks.skyportal.payloads import photometry_body
from brightscan.autoscan.sinks.skyportal.followup import FollowupPlan, check_form, matching_requests, request_state
from brightscan.autoscan.sinks.skyportal.client import FollowupRequest, RateLimiter, _retry_after


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_token_bucket_allows_a_burst_then_the_rate():
    clock = _Clock()
    limiter = RateLimiter(5.0, 10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        assert limiter.acquire() == 0.0  # the burst
    waits = [limiter.acquire() for _ in range(5)]
    assert waits == pytest.approx([0.2] * 5)  # then one slot every 1/rate
    assert clock.now == pytest.approx(1.0)


def test_hold_stops_everything_until_retry_after():
    clock = _Clock()
    limiter = RateLimiter(5.0, 10, clock=clock, sleep=clock.sleep)
    limiter.hold(3.0)
    assert limiter.acquire() == pytest.approx(3.0)
    unlimited = RateLimiter(0.0, 10, clock=clock, sleep=clock.sleep)
    assert all(unlimited.acquire() == 0.0 for _ in range(100))
    unlimited.hold(1.5)
    assert unlimited.acquire() == pytest.approx(1.5)


def test_retry_after_in_seconds_or_as_a_date():
    assert _retry_after("2") == 2.0 and _retry_after(None) is None and _retry_after("soon") is None
    later = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30), usegmt=True)
    assert 28 <= _retry_after(later) <= 31


def test_request_states_and_kowalski_duplicate_rule():
    assert [request_state(s) for s in ("pending submission", "submitted", "Completed", "rejected: busy",
                                       "failed to submit: down", "deleted")] == [
        "pending", "active", "active", "refused", "gone", "gone"]
    plan = FollowupPlan(allocation_id=3, target_group_ids=(7, 8))
    reqs = [FollowupRequest(1, "o", 3, "submitted", frozenset({8, 9})),
            FollowupRequest(2, "o", 3, "submitted", frozenset({5})),
            FollowupRequest(3, "o", 4, "submitted", frozenset({7}))]
    assert [r.id for r in matching_requests(reqs, plan)] == [1]
    nogroups = FollowupPlan(allocation_id=3, target_group_ids=())
    assert [r.id for r in matching_requests([*reqs, FollowupRequest(4, "o", 3, "x", frozenset())], nogroups)] == [4]


def test_sedm_form_rules():
    base = {"observation_type": "IFU", "priority": 3, "start_date": "2025-11-21T00:00:00",
            "end_date": "2025-11-28T00:00:00"}
    assert check_form("SEDM", base) == []
    assert check_form("SEDM", {**base, "end_date": "2025-11-20T00:00:00"}) == ["end_date must be after start_date"]
    assert check_form("SEDM", {**base, "observation_type": "Mix 'n Match", "observation_choices": ["g", "IFU"]}) == []
    assert check_form("SEDM", {**base, "advanced": True, "maximum_airmass": 4, "exposure_time": 30,
                               "maximum_fwhm": 2}) == ["maximum_airmass must be within [1, 3], got 4"]
    assert check_form("SEDM", {k: v for k, v in base.items() if k != "priority"}) == ["priority is required"]
    assert check_form(None, {"start_date": "2025-11-21"}) == ["end_date is required"]
    plan = FollowupPlan(allocation_id=3, target_group_ids=(7,), priority=2, observation_type="IFU")
    body = plan.request_body("ZTF25aaaaaab", dt.datetime(2025, 11, 21, 3, 4, 5))
    assert body["payload"]["start_date"] == "2025-11-21T03:04:05.000000"
    assert body["payload"]["end_date"] == "2025-11-28T03:04:05.000000"


def test_photometry_in_skyportal_units():
    epochs = [
        {"jd": 2461000.5, "fid": 2, "magpsf": 18.0, "sigmapsf": 0.1, "diffmaglim": 20.0, "isdiffpos": "t",
         "ra": 1.0, "dec": 2.0},
        {"jd": 2461000.5, "fid": 2, "magpsf": 18.0, "sigmapsf": 0.1, "diffmaglim": 20.0, "isdiffpos": "t"},  # twice
        {"jd": 2460999.5, "fid": 1, "magpsf": None, "sigmapsf": None, "diffmaglim": 20.5, "isdiffpos": None},
        {"jd": 2460998.5, "fid": 1, "magpsf": 19.0, "sigmapsf": 0.2, "diffmaglim": 20.0, "isdiffpos": "f"},
        {"jd": 2460997.5, "fid": 3, "magpsf": None, "sigmapsf": None, "diffmaglim": -99.0},  # bad limit
    ]
    body = photometry_body("ZTF25aaaaaab", epochs, instrument_id=1, group_ids=[7])
    assert body["mjd"] == [60998.0, 60999.0, 61000.0]
    assert body["filter"] == ["ztfg", "ztfg", "ztfr"] and set(body["magsys"]) == {"ab"}
    flux = 10 ** (-0.4 * (18.0 - 23.9))  # 18 mag = 229 µJy
    assert body["flux"][2] == pytest.approx(flux) and body["fluxerr"][2] == pytest.approx(0.1 * flux * math.log(10) / 2.5)
    assert body["flux"][0] == pytest.approx(-(10 ** (-0.4 * (19.0 - 23.9))))  # isdiffpos 'f': negative
    assert body["flux"][1] is None and body["fluxerr"][1] == pytest.approx(10 ** (-0.4 * (20.5 - 23.9)) / 5)
    assert photometry_body("x", epochs[-1:], instrument_id=1, group_ids=[]) is None
