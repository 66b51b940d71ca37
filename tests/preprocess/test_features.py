"""Feature sets and the history features on hand-built packets (production's definition, and the
causal mode that never looks past the alert's own jd)."""

from __future__ import annotations

import numpy as np
import pytest

from brightscan.alerts import Alert
from brightscan.errors import FeatureError
from brightscan.preprocess import FEATURE_SETS, compute_features, feature_names, named_features

JD = 2460000.5


def make_candidate(**overrides) -> dict:
    """A candidate with every v1 field; each value distinct so order mistakes show."""
    cand = {name: float(i) + 0.25 for i, name in enumerate(FEATURE_SETS["v1"])}
    for name in ("age", "peakmag_so_far", "maxmag_so_far", "days_since_peak", "days_to_peak", "nnondet"):
        del cand[name]
    cand.update(jd=JD, candid=1000, fid=1, magpsf=18.0, ndethist=7, ncovhist=20,
                jdstarthist=JD - 10.0, rb=0.6, drb=0.9, isdiffpos="t")
    cand.update(overrides)
    return {k: v for k, v in cand.items() if v is not _DROP}


_DROP = object()


def make_alert(candidate: dict | None = None, prv: list[dict] = ()) -> Alert:
    candidate = candidate if candidate is not None else make_candidate()
    return Alert("ZTF24aaaaaaa", int(candidate.get("candid", 1000)), candidate, tuple(prv),
                 {}, "hand-built")


def det(jd_offset: float, mag: float, candid: int | None = None, **extra) -> dict:
    return {"jd": JD + jd_offset, "magpsf": mag, "candid": candid, "fid": 1, **extra}


def nondet(jd_offset: float, limit: float = 20.0) -> dict:
    return {"jd": JD + jd_offset, "magpsf": None, "candid": None, "fid": 1, "diffmaglim": limit}


def test_sets_have_published_orders():
    assert len(feature_names("icml2023")) == 14 and len(feature_names("v1")) == 25
    assert feature_names("icml2023")[-2:] == ("age", "peakmag_so_far")
    assert feature_names("v1")[0] == "sgscore1" and feature_names("v1")[-1] == "maxmag_so_far"
    with pytest.raises(KeyError, match="unknown feature set"):
        feature_names("v2")


@pytest.mark.parametrize("feature_set", ["icml2023", "v1"])
def test_candidate_fields_land_in_order(feature_set):
    alert = make_alert()
    values = compute_features(alert, feature_set)
    assert values.dtype == np.float32 and values.shape == (len(FEATURE_SETS[feature_set]),)
    for name, value in zip(FEATURE_SETS[feature_set], values):
        if name in alert.candidate and name != "drb":
            assert value == np.float32(alert.candidate[name]), name


def test_history_from_prv_candidates_plus_candidate():
    prv = [det(-6.0, 19.0, 1), det(-4.0, 17.5, 2), nondet(-3.0, 16.0), det(-1.0, 18.5, 3)]
    f = named_features(make_alert(make_candidate(magpsf=18.2, jdstarthist=JD - 6.0), prv))
    assert f["age"] == pytest.approx(6.0)
    assert f["peakmag_so_far"] == 17.5
    assert f["maxmag_so_far"] == 19.0
    assert f["days_since_peak"] == pytest.approx(4.0)
    assert f["days_to_peak"] == pytest.approx(2.0)
    assert f["nnondet"] == 20 - 7


def test_current_candidate_can_be_the_peak():
    f = named_features(make_alert(make_candidate(magpsf=16.0), [det(-2.0, 18.0, 1)]))
    assert f["peakmag_so_far"] == 16.0 and f["days_since_peak"] == 0.0


def test_ties_first_entry_wins():
    prv = [det(-5.0, 17.0, 1), det(-3.0, 17.0, 2), det(-1.0, 17.0, 3)]
    f = named_features(make_alert(make_candidate(magpsf=17.0), prv))
    assert f["days_since_peak"] == pytest.approx(5.0)


def test_non_detections_skipped_even_when_earliest_and_brightest_limit():
    prv = [nondet(-30.0, 15.0), det(-2.0, 18.0, 1)]
    f = named_features(make_alert(make_candidate(jdstarthist=JD - 2.0), prv))
    assert f["age"] == pytest.approx(2.0)  # the non-detection 30 days ago is not the first alert
    assert f["peakmag_so_far"] == 18.0


def test_negative_subtractions_are_kept():
    prv = [det(-2.0, 16.5, 1, isdiffpos="f")]
    f = named_features(make_alert(make_candidate(magpsf=18.0), prv))
    assert f["peakmag_so_far"] == 16.5


@pytest.mark.parametrize(("jdstarthist", "age"), [(JD - 10.0, 10.0), (JD - 1.0, 3.0)])
def test_first_alert_jd_is_min_of_jdstarthist_and_earliest_detection(jdstarthist, age):
    prv = [det(-3.0, 18.0, 1)]
    f = named_features(make_alert(make_candidate(jdstarthist=jdstarthist), prv))
    assert f["age"] == pytest.approx(age)
    assert f["days_to_peak"] == pytest.approx(age - 3.0 if age == 10.0 else 0.0)


def test_missing_jdstarthist_uses_detections():
    f = named_features(make_alert(make_candidate(jdstarthist=_DROP), [det(-4.0, 18.5, 1)]))
    assert f["age"] == pytest.approx(4.0)


def test_drb_falls_back_to_rb():
    assert named_features(make_alert(make_candidate(drb=_DROP)))["drb"] == pytest.approx(0.6)
    assert named_features(make_alert(make_candidate(drb=None)))["drb"] == pytest.approx(0.6)
    assert named_features(make_alert())["drb"] == pytest.approx(0.9)


def test_drb_and_rb_both_missing_is_a_feature_error_only_where_needed():
    alert = make_alert(make_candidate(drb=_DROP, rb=_DROP))
    with pytest.raises(FeatureError, match="missing feature drb"):
        compute_features(alert, "v1")
    assert compute_features(alert, "icml2023").shape == (14,)  # icml2023 does not use drb


@pytest.mark.parametrize("name", ["sgscore1", "distpsnr2", "ndethist", "ncovhist", "magpsf", "scorr"])
def test_missing_field_is_rejected_not_zero(name):
    alert = make_alert(make_candidate(**{name: None}))
    with pytest.raises(FeatureError, match=f"missing feature {name}") as info:
        compute_features(alert, "v1")
    assert info.value.candid == 1000 and info.value.object_id == "ZTF24aaaaaaa"
    assert info.value.stage == "features"


@pytest.mark.parametrize(("value", "match"), [("0.5", "is not a number"), (float("nan"), "is NaN"),
                                              (True, "is not a number"), ([1.0], "is not a number")])
def test_wrongly_typed_or_nan_field_is_rejected(value, match):
    with pytest.raises(FeatureError, match=f"sgscore1 {match}"):
        compute_features(make_alert(make_candidate(sgscore1=value)), "v1")


def test_causal_merges_earlier_alerts_and_dedupes_by_candid():
    prv = [det(-4.0, 18.0, 11)]
    earlier = [det(-4.0, 17.0, 11),  # same candid as a prv entry: first occurrence (this one) wins
               det(-8.0, 18.8, 10), det(-8.0, 18.8, 10)]
    f = named_features(make_alert(make_candidate(jdstarthist=JD - 4.0), prv), earlier=earlier)
    assert f["age"] == pytest.approx(8.0)
    assert f["peakmag_so_far"] == 17.0 and f["days_since_peak"] == pytest.approx(4.0)
    assert f["maxmag_so_far"] == 18.8


def test_causal_dedupes_by_jd_and_fid_without_candid():
    earlier = [det(-2.0, 17.0, None), det(-2.0, 16.0, None), det(-2.0, 15.0, None, fid=2)]
    f = named_features(make_alert(make_candidate(jdstarthist=JD - 2.0)), earlier=earlier)
    assert f["peakmag_so_far"] == 15.0  # fid 2 is another detection; the fid-1 duplicate is dropped
    f1 = named_features(make_alert(make_candidate(jdstarthist=JD - 2.0)), earlier=earlier[:2])
    assert f1["peakmag_so_far"] == 17.0


def test_causal_never_uses_a_later_jd():
    later = [det(+1.0, 12.0, 50), det(+0.5, 25.0, 51), det(+3.0, 10.0, None)]
    prv_later = [det(+2.0, 11.0, 52)]  # a replayed packet with a future prv entry is also cut
    base = named_features(make_alert(make_candidate(jdstarthist=JD - 1.0), [det(-1.0, 18.0, 1)]))
    f = named_features(make_alert(make_candidate(jdstarthist=JD - 1.0), [det(-1.0, 18.0, 1), *prv_later]),
                       earlier=later)
    assert f == base


def test_same_jd_as_alert_is_allowed_and_deduped_with_itself():
    earlier = [det(0.0, 18.0, 1000)]  # the alert itself, e.g. from the first pass of a batch
    f = named_features(make_alert(make_candidate(magpsf=18.0)), earlier=earlier)
    assert f["days_since_peak"] == 0.0


def test_training_and_serving_share_one_function():
    alert = make_alert(make_candidate(), [det(-3.0, 17.0, 1)])
    served = compute_features(alert, "v1")
    named = named_features(alert)
    np.testing.assert_array_equal(served, np.array([named[n] for n in FEATURE_SETS["v1"]], dtype=np.float32))
