"""The one Julian date <-> Unix time conversion agrees with astropy."""

from __future__ import annotations

import datetime as dt

import pytest
from astropy.time import Time
from hypothesis import given, settings
from hypothesis import strategies as st

from brightscan.times import JD_UNIX_EPOCH, jd_to_datetime, jd_to_unix, unix_to_jd


def test_the_epoch_and_a_known_night():
    assert jd_to_unix(JD_UNIX_EPOCH) == 0.0
    assert jd_to_datetime(2460000.5) == dt.datetime(2023, 2, 25, tzinfo=dt.timezone.utc)


@settings(max_examples=50, deadline=None)
@given(jd=st.floats(2450000.0, 2470000.0))
def test_agrees_with_astropy_and_round_trips(jd):
    assert jd_to_unix(jd) == pytest.approx(Time(jd, format="jd", scale="utc").unix, abs=1e-3)
    assert unix_to_jd(jd_to_unix(jd)) == pytest.approx(jd, abs=1e-9)
    assert jd_to_datetime(jd).timestamp() == pytest.approx(jd_to_unix(jd), abs=1e-3)
