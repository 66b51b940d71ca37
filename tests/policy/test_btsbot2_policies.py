"""btsbot 2.0.7's four policies against a direct transcription of their rules in val.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brightscan.policy import ScoredAlert, create_policy


def val_py_rule(name: str, scores: np.ndarray, mags: np.ndarray) -> bool:
    """val.py's functions over the alerts so far (preds = np.rint(raw_preds))."""
    preds = np.rint(scores).astype(int)
    if name.endswith("p2") and np.min(mags) > 18.5:
        return False
    if name.startswith("bts"):
        return int(np.sum((preds == 1) & (mags < 19))) >= 2
    return int(np.sum((scores > 0.85) & (mags < 19))) >= 1


alerts = st.lists(st.tuples(st.sampled_from([0.0, 0.3, 0.5, 0.50001, 0.85, 0.850001, 0.9, 1.0]),
                            st.sampled_from([17.0, 18.5, 18.50001, 18.9, 19.0, 19.5])),
                  min_size=1, max_size=8)


@pytest.mark.parametrize("name", ["bts_p1", "bts_p2", "prod_p1", "prod_p2"])
@settings(max_examples=150, deadline=None)
@given(items=alerts)
def test_equals_val_py_at_every_alert(name, items):
    history = [ScoredAlert(candid=i, jd=2460000.5 + i, score=s, magpsf=m) for i, (s, m) in enumerate(items)]
    got = create_policy(name).decisions(history)
    scores = np.array([s for s, _ in items])
    mags = np.array([m for _, m in items])
    expected = [val_py_rule(name, scores[: i + 1], mags[: i + 1]) for i in range(len(items))]
    assert list(got) == expected


def test_a_half_is_not_a_bts_prediction():
    history = [ScoredAlert(candid=i, jd=2460000.5 + i, score=0.5, magpsf=18.0) for i in range(3)]
    assert not create_policy("bts_p1").decisions(history).any()
