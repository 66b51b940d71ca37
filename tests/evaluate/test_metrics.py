"""Alert-level and calibration metrics against brute-force or hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brightscan import metrics as M


def auc_by_pairs(y, s):
    """Mann-Whitney: P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0])),
                min_size=2, max_size=40))
def test_auc_equals_pairwise_probability(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    if y.min() == y.max():
        assert np.isnan(M.roc_auc(y, s))
    else:
        assert M.roc_auc(y, s) == pytest.approx(auc_by_pairs(y, s))


def test_roc_curve_endpoints_and_perfect_classifier():
    fpr, tpr, thr = M.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.isinf(thr[0])
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert M.roc_auc([0, 1], [0.2, 0.9]) == 1.0


def test_alert_metrics_at_half():
    y = [1, 1, 1, 0, 0, 0, 0]
    s = [0.9, 0.5, 0.2, 0.6, 0.1, 0.3, 0.49]
    m = M.alert_metrics(y, s)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 3)  # 0.5 counts as positive
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["n_alerts"] == 7
    assert np.isnan(M.alert_metrics([0, 0], [0.1, 0.2])["precision"])


def test_outcomes_by_magnitude_bins():
    y = [1, 0, 1, 0, 1]
    s = [0.9, 0.9, 0.1, 0.1, 0.9]
    mag = [15.2, 18.4, 18.6, 20.9, 22.0]  # the last one lies outside 15-21 and is dropped
    out = M.outcomes_by_magnitude(y, s, mag)
    assert len(out["edges"]) == 13 and out["edges"][0] == 15.0 and out["edges"][-1] == 21.0
    assert out["tp"].sum() == 1 and out["tp"][0] == 1
    assert out["fp"][6] == 1  # [18.0, 18.5)
    assert out["fn"][7] == 1  # [18.5, 19.0)
    assert out["tn"][11] == 1  # [20.5, 21.0)


def test_ece_hand_example():
    # bin [0.1,0.2): scores 0.15, 0.15 with labels 0, 1 -> |0.5 - 0.15| = 0.35, weight 2/4
    # bin [0.9,1.0]: scores 0.95, 1.0 with labels 1, 1 -> |1 - 0.975| = 0.025, weight 2/4
    ece = M.expected_calibration_error([0, 1, 1, 1], [0.15, 0.15, 0.95, 1.0])
    assert ece == pytest.approx(0.5 * 0.35 + 0.5 * 0.025)
    r = M.reliability_bins([0, 1, 1, 1], [0.15, 0.15, 0.95, 1.0])
    assert r["count"].tolist() == [0, 2, 0, 0, 0, 0, 0, 0, 0, 2]


def test_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 20000)
    y = (rng.random(z.size) < M.sigmoid(z)).astype(int)
    t = M.fit_temperature(y, 3.0 * z)  # logits three times too confident
    assert t == pytest.approx(3.0, rel=0.1)
    before = M.expected_calibration_error(y, M.sigmoid(3.0 * z))
    after = M.expected_calibration_error(y, M.sigmoid(3.0 * z / t))
    assert after < before / 2


def test_sigmoid_inverts_log_odds_and_is_stable():
    p = np.array([1e-6, 0.2, 0.5, 0.9])
    np.testing.assert_allclose(M.sigmoid(np.log(p) - np.log1p(-p)), p, rtol=1e-6)
    assert np.all(np.isfinite(M.sigmoid(np.array([-1000.0, 1000.0]))))


def test_source_metrics_empty_denominators():
    m = M.source_metrics([0, 0], [False, False])
    assert np.isnan(m["completeness"]) and np.isnan(m["purity"]) and np.isnan(m["median_delay_days"])
