"""PolicySearch: the chosen policy on constructed validation sets, agreement with per-source
evaluation, delegation, storage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from brightscan.errors import BrightscanWarning, ConfigError
from brightscan.metrics import source_metrics
from brightscan.evaluate.objects import apply_policy, object_arrays
from brightscan.policy import GtN, PolicySearch, ScoredAlert, ObjectHistory, policy_from_dict
from brightscan.policy import create_policy
from brightscan.policy.search import NAMED_CANDIDATES, _Flat


def source(oid: str, label: int, scores, mags=None, jd0: float = 0.0, save_jd=None) -> ObjectHistory:
    mags = mags if mags is not None else [18.0] * len(scores)
    alerts = tuple(ScoredAlert(i + 1, jd0 + i, s, m) for i, (s, m) in enumerate(zip(scores, mags)))
    return ObjectHistory(oid, label, alerts, save_jd=save_jd)


def separable_val():
    """Bright sources all reach 0.7; faint ones peak at 0.6 -> thresholds in (0.6, 0.7] are perfect."""
    bright = [source(f"b{i}", 1, [0.2, 0.7 + 0.02 * i], save_jd=1.5) for i in range(5)]
    faint = [source(f"f{i}", 0, [0.6, 0.1 * i]) for i in range(5)]
    return bright + faint


def test_search_finds_the_separating_threshold():
    search = PolicySearch(grid={"n": [1, 2], "threshold": [0.5, 0.65, 0.8], "max_magpsf": [None],
                                "min_age": [None], "min_detections": [None]}).fit(separable_val())
    assert search.best_ == GtN(1, 0.65)
    assert search.target_met_
    assert search.best_score_["completeness"] == 1.0 and search.best_score_["purity"] == 1.0
    assert search.best_score_["median_delay_days"] == pytest.approx(-0.5)  # pass at jd 1, save 1.5
    assert search.n_candidates_ == 6 + len(NAMED_CANDIDATES)  # the grid, then btsbot 2's four
    # the frontier is sorted by completeness and purity falls as completeness rises
    comp = [r["completeness"] for r in search.frontier_]
    pur = [r["purity"] for r in search.frontier_]
    assert comp == sorted(comp) and pur == sorted(pur, reverse=True)
    assert {"params", "completeness", "purity", "median_delay_days"} <= set(search.frontier_[0])


def test_btsbot2_policies_are_candidates_and_can_be_chosen():
    """Impostors score as high but are fainter than 19 mag: only a magnitude cut is pure, and the
    grid has none, so btsbot 2's prod_p1 (score > 0.85, magpsf < 19; first alert) wins."""
    val = [source(f"b{i}", 1, [0.9, 0.9], mags=[18.0, 18.2], save_jd=3.0) for i in range(4)]
    val += [source(f"f{i}", 0, [0.9, 0.9], mags=[19.6, 19.7]) for i in range(4)]
    grid = {"n": [1, 2], "threshold": [0.5], "max_magpsf": [None], "min_age": [None], "min_detections": [None]}
    search = PolicySearch(grid=grid).fit(val)
    assert search.best_ == create_policy("prod_p1") and search.best_score_["purity"] == 1.0
    named = {r["params"].get("policy") for r in search.frontier_}
    assert "prod_p1" in named
    restored = policy_from_dict(json.loads(json.dumps(search.to_dict())))
    assert restored.best_ == search.best_ and restored.named is None
    # without the named candidates, the grid's best is impure
    plain = PolicySearch(grid=grid, named=[]).fit(val)
    assert plain.n_candidates_ == 2 and plain.best_score_["purity"] == 0.5
    once_bright = PolicySearch(grid=grid, named=["bts_p2"]).fit(val)
    assert once_bright.best_ == create_policy("bts_p2") and once_bright.n_candidates_ == 3
    from brightscan.evaluate.report import threshold_curves  # evaluate's curves take any chosen policy

    curves = threshold_curves(once_bright, val, grid)
    assert set(curves) == {1, 2} and curves[2][0]["params"]["max_magpsf"] == 19.0


def test_search_prefers_purity_then_earlier_identification():
    # both thresholds are complete and pure; 0.3 identifies on the first alert, 0.8 on the second
    val = [source(f"b{i}", 1, [0.4, 0.9], save_jd=5.0) for i in range(3)] + [source("f", 0, [0.1, 0.2])]
    search = PolicySearch(grid={"n": [1], "threshold": [0.8, 0.3], "max_magpsf": [None],
                                "min_age": [None], "min_detections": [None]}).fit(val)
    assert search.best_.threshold == 0.3


def test_search_uses_magnitude_cut_when_it_buys_purity():
    # faint impostors score as high as the bright ones but are fainter than 19 mag
    val = [source(f"b{i}", 1, [0.9, 0.9], mags=[18.0, 18.2]) for i in range(4)]
    val += [source(f"f{i}", 0, [0.9, 0.9], mags=[19.6, 19.7]) for i in range(4)]
    search = PolicySearch(grid={"n": [1], "threshold": [0.5], "max_magpsf": [None, 19.0],
                                "min_age": [None], "min_detections": [None]}).fit(val)
    assert search.best_.max_magpsf == 19.0 and search.best_score_["purity"] == 1.0


def test_fitted_search_delegates_and_round_trips():
    search = PolicySearch(grid={"threshold": [0.5, 0.65, 0.8]}).fit(separable_val())
    h = separable_val()[0].alerts
    assert search.passes(h) == search.best_.passes(h)
    assert search.first_pass_index(h) == search.best_.first_pass_index(h)
    restored = policy_from_dict(json.loads(json.dumps(search.to_dict())))
    assert isinstance(restored, PolicySearch) and restored.best_ == search.best_
    assert restored.first_pass_index(h) == search.first_pass_index(h)


def test_unfitted_search_and_bad_inputs():
    with pytest.raises(ConfigError, match="not fitted"):
        PolicySearch().passes(separable_val()[0].alerts)
    with pytest.raises(ConfigError, match="bright"):
        PolicySearch().fit([source("f", 0, [0.1, 0.2])])
    with pytest.raises(ConfigError, match="unknown parameters"):
        PolicySearch(grid={"colour": ["red"]}).fit(separable_val())
    with pytest.raises(ConfigError):
        PolicySearch(target_completeness=0.0).fit(separable_val())


def test_unreachable_target_falls_back_to_gt1_level():
    """b1 is never found, so 99% is out of reach. The old rule (most complete) takes threshold
    0.1, which finds b2 but passes every impostor; the gt1 fallback keeps gt1's level and purity."""
    val = [source("b0", 1, [0.9]), source("b1", 1, [0.03]), source("b2", 1, [0.15])]
    val += [source(f"f{i}", 0, [0.2]) for i in range(5)]
    grid = {"n": [1], "threshold": [0.1, 0.5, 0.95], "max_magpsf": [None], "min_age": [None],
            "min_detections": [None]}
    with pytest.warns(BrightscanWarning, match="no policy reached.*'gt1'"):
        search = PolicySearch(grid=grid).fit(val)
    assert not search.target_met_ and search.rule_ == "gt1"
    assert search.best_ == GtN(1, 0.5) and search.best_score_["purity"] == 1.0
    with pytest.warns(BrightscanWarning, match="most_complete"):
        old = PolicySearch(grid=grid, fallback="most_complete").fit(val)
    assert old.best_.threshold == 0.1 and old.rule_ == "most_complete"
    assert old.best_score_["purity"] < search.best_score_["purity"]
    restored = policy_from_dict(json.loads(json.dumps(search.to_dict())))
    assert restored.rule_ == "gt1" and restored.fallback == "gt1"
    with pytest.raises(ConfigError, match="fallback"):
        PolicySearch(fallback="coin").fit(val)


def test_gt1_is_a_candidate_even_outside_the_grid():
    val = [source("b0", 1, [0.9]), source("b1", 1, [0.05]), source("f", 0, [0.3])]
    grid = {"n": [1], "threshold": [0.2], "max_magpsf": [None], "min_age": [None], "min_detections": [None]}
    with pytest.warns(BrightscanWarning):
        search = PolicySearch(grid=grid).fit(val)
    assert search.n_candidates_ == 2 + len(NAMED_CANDIDATES)
    assert search.best_ == GtN(1, 0.5)  # as complete as 0.2, purer


sources_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.lists(st.tuples(st.floats(0, 1), st.floats(16, 21)), min_size=1, max_size=6),
              st.none() | st.floats(0, 6)),
    min_size=1, max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(raw=sources_strategy, n=st.integers(1, 3), threshold=st.floats(0, 1),
       max_mag=st.none() | st.floats(17, 20), min_det=st.none() | st.integers(1, 3))
def test_vectorised_evaluation_matches_per_source_policy(raw, n, threshold, max_mag, min_det):
    """The flattened grid evaluation gives the same pass set and times as running the policy."""
    srcs = [source(f"s{i}", lab, [a[0] for a in al], [a[1] for a in al], jd0=10.0 * i, save_jd=sv)
            for i, (lab, al, sv) in enumerate(raw)]
    policy = GtN(n, threshold, max_magpsf=max_mag, min_detections=min_det)
    flat = _Flat(srcs)
    passed_v, jd_v = flat.first_pass(policy.qualifying(flat.cols), n)
    passed, pass_jd = apply_policy(policy, srcs)
    assert passed_v.tolist() == passed.tolist()
    np.testing.assert_array_equal(jd_v, pass_jd)
    arr = object_arrays(srcs)
    a = source_metrics(flat.labels, passed_v, jd_v, flat.save_jd)
    b = source_metrics(arr["label"], passed, pass_jd, arr["save_jd"])
    assert json.dumps(a) == json.dumps(b)


@settings(max_examples=80, deadline=None)
@given(raw=sources_strategy, target=st.floats(0.3, 1.0),
       thresholds=st.lists(st.sampled_from([0.05, 0.3, 0.5, 0.7, 0.9]), min_size=1, max_size=4, unique=True),
       ns=st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True))
def test_search_is_never_worse_than_gt1_on_validation(raw, target, thresholds, ns):
    """Whatever the grid and target: at least gt1's purity, and at least min(target, gt1's) completeness."""
    import warnings

    srcs = [source(f"s{i}", lab, [a[0] for a in al], [a[1] for a in al], jd0=10.0 * i, save_jd=sv)
            for i, (lab, al, sv) in enumerate(raw)]
    assume(any(s.label == 1 for s in srcs))  # completeness needs a bright source
    grid = {"n": ns, "threshold": thresholds, "max_magpsf": [None, 19.0], "min_age": [None],
            "min_detections": [None]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BrightscanWarning)
        search = PolicySearch(target_completeness=target, grid=grid).fit(srcs)
    arr = object_arrays(srcs)
    gt1 = source_metrics(arr["label"], *apply_policy(GtN(1, 0.5), srcs)[:1])
    chosen = source_metrics(arr["label"], *apply_policy(search, srcs)[:1])
    assert chosen["completeness"] >= min(target, gt1["completeness"]) - 1e-12
    if gt1["completeness"] >= target or not search.target_met_:
        assert np.nan_to_num(chosen["purity"]) >= np.nan_to_num(gt1["purity"]) - 1e-12
