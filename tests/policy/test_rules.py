"""Fixed policies: decisions on hand-built histories, causality and monotonicity (Hypothesis)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brightscan.errors import ConfigError
from brightscan.policy import GtN, PolicySearch, ScoredAlert, create_policy, policy_from_dict


def hist(*rows: tuple[float, float, float], **extra) -> list[ScoredAlert]:
    """(jd, score, magpsf) rows -> ScoredAlert list."""
    return [ScoredAlert(candid=i + 1, jd=jd, score=s, magpsf=m, **extra) for i, (jd, s, m) in enumerate(rows)]


def test_gtn_counts_alerts_at_or_above_threshold():
    h = hist((1.0, 0.6, 18.0), (2.0, 0.3, 18.0), (3.0, 0.5, 18.0), (4.0, 0.9, 18.0))
    assert create_policy("gt1").decisions(h).tolist() == [True, True, True, True]
    assert create_policy("gt2").decisions(h).tolist() == [False, False, True, True]  # 0.5 counts (>=)
    assert create_policy("gt3").first_pass_index(h) == 3
    assert create_policy("gt4").first_pass_index(h) is None
    assert create_policy("gt2").passes(h[:2]) is False and create_policy("gt2").passes(h[:3]) is True


def test_bts_prod_is_strict_and_needs_magnitude_cut():
    p = create_policy("bts_prod")
    assert not p.passes(hist((1.0, 0.85, 18.0)))  # score must be > 0.85
    assert not p.passes(hist((1.0, 0.9, 19.0)))  # magpsf must be < 19
    assert p.passes(hist((1.0, 0.9, 18.99)))


def test_bts_prod_peak_uses_feature_or_running_minimum():
    p = create_policy("bts_prod_peak")
    # no peakmag_so_far given: the running minimum of magpsf is used
    h = hist((1.0, 0.9, 18.8), (2.0, 0.1, 18.4), (3.0, 0.9, 18.7))
    assert p.decisions(h).tolist() == [False, False, True]
    # the feature (which also counts non-alert detections) wins over the history
    h2 = [ScoredAlert(1, 1.0, 0.9, 18.8, peakmag_so_far=18.2)]
    assert p.passes(h2)


def test_age_and_detection_cuts_fallback_to_history():
    h = hist((10.0, 0.9, 18.0), (10.3, 0.9, 18.0), (11.5, 0.9, 18.0))
    assert GtN(1, 0.5, min_age=1.0).first_pass_index(h) == 2  # ages 0, 0.3, 1.5
    assert GtN(1, 0.5, min_detections=2).first_pass_index(h) == 1
    h_feat = [ScoredAlert(1, 10.0, 0.9, 18.0, age=4.0, ndethist=7)]
    assert GtN(1, 0.5, min_age=3.0, min_detections=5).passes(h_feat)


def test_empty_history_never_passes():
    assert create_policy("gt1").passes([]) is False
    assert create_policy("gt1").first_pass_index([]) is None


def test_params_dict_roundtrip_and_json():
    for name in ("gt1", "gt2", "gt3", "bts_prod", "bts_prod_peak"):
        p = create_policy(name)
        d = json.loads(json.dumps(p.to_dict()))
        assert policy_from_dict(d) == p
    assert create_policy("gt1", threshold=0.7).get_params()["threshold"] == 0.7
    assert create_policy("gt1").fit([]) is not None


@pytest.mark.parametrize("bad", [
    {"policy": "Nope", "params": {}},
    {"policy": "GtN", "params": {"n": 0}},
    {"policy": "GtN", "params": {"threshold": 1.5}},
    {"policy": "GtN", "params": {"colour": "red"}},
    {"params": {}},
])
def test_invalid_descriptions_raise_config_error(bad):
    with pytest.raises(ConfigError):
        policy_from_dict(bad)


def test_unknown_name_raises_config_error():
    with pytest.raises(ConfigError, match="unknown policy"):
        create_policy("gt0")
    with pytest.raises(ConfigError):
        create_policy("gt1", colour="red")
    assert isinstance(create_policy("search"), PolicySearch)


# --- properties ----------------------------------------------------------------------------------
alert_rows = st.lists(
    st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 1.0), st.floats(15.0, 21.0)), min_size=1, max_size=12
)
policies = st.builds(
    GtN,
    n=st.integers(1, 4),
    threshold=st.floats(0.0, 1.0),
    max_magpsf=st.none() | st.floats(17.0, 20.0),
    max_peakmag_so_far=st.none() | st.floats(17.0, 20.0),
    min_age=st.none() | st.floats(0.0, 5.0),
    min_detections=st.none() | st.integers(1, 5),
    strict=st.booleans(),
)


def _history(rows):
    jd = 2460000.0 + np.cumsum([r[0] for r in rows])
    return hist(*[(float(t), s, m) for t, (_, s, m) in zip(jd, rows)])


@settings(max_examples=200, deadline=None)
@given(rows=alert_rows, policy=policies, data=st.data())
def test_decisions_are_causal(rows, policy, data):
    """Changing alerts after index k (score and magnitude) never changes decisions 0..k."""
    h = _history(rows)
    k = data.draw(st.integers(0, len(h) - 1))
    later = data.draw(st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(15.0, 21.0)),
                               min_size=len(h) - k - 1, max_size=len(h) - k - 1))
    changed = h[: k + 1] + [ScoredAlert(a.candid, a.jd, s, m) for a, (s, m) in zip(h[k + 1:], later)]
    before, after = policy.decisions(h), policy.decisions(changed)
    assert before[: k + 1].tolist() == after[: k + 1].tolist()
    # and the decision at k is what passes() says given only the alerts up to k
    assert policy.passes(h[: k + 1]) == bool(before[k])


@settings(max_examples=200, deadline=None)
@given(rows=alert_rows, n=st.integers(1, 3), t1=st.floats(0.0, 1.0), t2=st.floats(0.0, 1.0))
def test_monotone_in_threshold(rows, n, t1, t2):
    """A higher threshold never passes a source earlier (or at all when a lower one does not)."""
    lo, hi = min(t1, t2), max(t1, t2)
    h = _history(rows)
    d_lo, d_hi = GtN(n, lo).decisions(h), GtN(n, hi).decisions(h)
    assert np.all(d_lo >= d_hi)
    # and once passed, a gtN policy stays passed
    assert np.all(np.diff(d_lo.astype(int)) >= 0)
