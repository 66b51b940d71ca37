"""Source-level outcomes of the named policies on hand-built score histories (answers by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brightscan.errors import InputError
from brightscan.metrics import metrics_by_peak, source_metrics
from brightscan.evaluate.objects import apply_policy, build_objects, read_scanner_saves, select_objects, object_arrays
from brightscan.policy import create_policy

# objectId, label, scanner save jd, [(jd, score, magpsf), ...]
SOURCES = [
    ("A", 1, 10.5, [(10.0, 0.3, 18.0), (10.4, 0.6, 17.8), (11.0, 0.7, 17.5), (12.0, 0.9, 17.2)]),
    ("B", 1, 20.0, [(19.0, 0.55, 18.9), (19.5, 0.2, 18.6), (20.5, 0.95, 18.4)]),
    ("C", 1, None, [(5.0, 0.1, 18.2), (6.0, 0.4, 18.0)]),
    ("D", 0, None, [(1.0, 0.6, 19.5), (2.0, 0.9, 19.4), (3.0, 0.7, 19.2)]),
    ("E", 0, None, [(1.0, 0.5, 18.0), (2.0, 0.2, 18.1)]),
    ("F", 0, None, [(3.0, 0.86, 18.9), (4.0, 0.1, 19.0)]),
]

# completeness, purity, median delay (policy minus scanner, days), worked out by hand:
#   gt1: A@10.4 B@19.0 D E F -> 2/3 bright, 2/5 passed; delays -0.1, -1.0
#   gt2: A@11.0 B@20.5 D      -> 2/3, 2/3; delays 0.5, 0.5
#   gt3: A@12.0 D             -> 1/3, 1/2; delay 1.5
#   bts_prod (>0.85, m<19): A@12.0 B@20.5 F -> 2/3, 2/3; delays 1.5, 0.5
#   bts_prod_peak (+ peak so far <= 18.5): A@12.0 B@20.5 (F peaked at 18.9) -> 2/3, 1
EXPECTED = {
    "gt1": (2 / 3, 2 / 5, -0.55),
    "gt2": (2 / 3, 2 / 3, 0.5),
    "gt3": (1 / 3, 1 / 2, 1.5),
    "bts_prod": (2 / 3, 2 / 3, 1.0),
    "bts_prod_peak": (2 / 3, 1.0, 1.0),
}


def alert_table() -> tuple[pd.DataFrame, np.ndarray, dict[str, float]]:
    rows, scores, candid = [], [], 0
    for oid, label, _, alerts in SOURCES:
        for jd, score, mag in reversed(alerts):  # unsorted on purpose: build_objects sorts by jd
            candid += 1
            rows.append({"candid": candid, "objectId": oid, "jd": jd, "magpsf": mag, "label": label})
            scores.append(score)
    saves = {oid: save for oid, _, save, _ in SOURCES if save is not None}
    return pd.DataFrame(rows), np.array(scores), saves


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_named_policy_completeness_purity_delay(name):
    table, scores, saves = alert_table()
    sources = build_objects(table, scores, saves)
    arr = object_arrays(sources)
    passed, pass_jd = apply_policy(create_policy(name), sources)
    m = source_metrics(arr["label"], passed, pass_jd, arr["save_jd"])
    completeness, purity, delay = EXPECTED[name]
    assert m["completeness"] == pytest.approx(completeness)
    assert m["purity"] == pytest.approx(purity)
    assert m["median_delay_days"] == pytest.approx(delay)
    assert m["n_sources"] == 6 and m["n_bright"] == 3


def test_gt1_identification_times():
    table, scores, saves = alert_table()
    sources = build_objects(table, scores, saves)
    passed, pass_jd = apply_policy(create_policy("gt1"), sources)
    assert [s.object_id for s in sources] == ["A", "B", "C", "D", "E", "F"]
    assert passed.tolist() == [True, True, False, True, True, True]
    np.testing.assert_allclose(pass_jd, [10.4, 19.0, np.nan, 1.0, 1.0, 3.0])


def test_by_peak_magnitude():
    table, scores, saves = alert_table()
    sources = build_objects(table, scores, saves)
    arr = object_arrays(sources)
    passed, _ = apply_policy(create_policy("gt1"), sources)
    # peaks: A 17.2, B 18.4, C 18.0, D 19.2, E 18.0, F 18.9
    r = metrics_by_peak(arr["label"], passed, arr["peak_mag"], bins=np.array([17.0, 18.0, 18.5, 19.5]))
    np.testing.assert_allclose(r["completeness"], [1.0, 0.5, np.nan])  # [17,18): A; [18,18.5): B, C
    np.testing.assert_allclose(r["purity"], [1.0, 0.5, 0.0])  # [18,18.5): B, E passed; [18.5,19.5): D, F
    assert r["n_bright"].tolist() == [1, 2, 0]


def test_selection_drops_single_alert_and_faint_peaked_bright_sources():
    table, scores, saves = alert_table()
    extra = pd.DataFrame([
        {"candid": 100, "objectId": "G", "jd": 1.0, "magpsf": 17.0, "label": 1},  # one alert
        {"candid": 101, "objectId": "H", "jd": 1.0, "magpsf": 18.7, "label": 1},  # bright, peak 18.6
        {"candid": 102, "objectId": "H", "jd": 2.0, "magpsf": 18.6, "label": 1},
        {"candid": 103, "objectId": "I", "jd": 1.0, "magpsf": 20.0, "label": 0},  # faint label 0: kept
        {"candid": 104, "objectId": "I", "jd": 2.0, "magpsf": 20.1, "label": 0},
    ])
    sources = build_objects(pd.concat([table, extra]), np.r_[scores, [0.9] * 5], saves)
    kept = [s.object_id for s in select_objects(sources)]
    assert kept == ["A", "B", "C", "D", "E", "F", "I"]


def test_peakmag_feature_counts_toward_observed_peak():
    table = pd.DataFrame({"candid": [1, 2], "objectId": ["H", "H"], "jd": [1.0, 2.0],
                          "magpsf": [18.7, 18.6], "label": [1, 1], "peakmag_so_far": [18.3, 18.3]})
    sources = build_objects(table, [0.1, 0.2])
    assert sources[0].observed_peak == pytest.approx(18.3)
    assert sources[0].alerts[0].peakmag_so_far == pytest.approx(18.3)
    assert [s.object_id for s in select_objects(sources)] == ["H"]


def test_bad_tables_raise_input_error(tmp_path):
    table, scores, _ = alert_table()
    with pytest.raises(InputError, match="lacks column"):
        build_objects(table.drop(columns="label"), scores)
    with pytest.raises(InputError, match="scores for"):
        build_objects(table, scores[:-1])
    mixed = table.copy()
    mixed.loc[0, "label"] = 1 - mixed.loc[0, "label"]
    with pytest.raises(InputError, match="different labels"):
        build_objects(mixed, scores)
    with pytest.raises(InputError, match="not found"):
        read_scanner_saves(tmp_path / "none.csv")


def test_scanner_saves_csv_with_missed_sources(tmp_path):
    path = tmp_path / "saves.csv"
    path.write_text("objectId,save_jd\nZTF1,2460000.5\nZTF2,\n")
    assert read_scanner_saves(path) == {"ZTF1": 2460000.5}
