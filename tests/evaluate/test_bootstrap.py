"""Bootstrap intervals over sources: coverage, seeding, degenerate inputs, the report's keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brightscan import metrics as M


def test_intervals_contain_the_estimate_and_are_seeded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    passed = np.where(y == 1, rng.random(300) < 0.9, rng.random(300) < 0.2)
    pass_jd, save_jd = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    point = M.source_metrics(y, passed, pass_jd, save_jd)
    ci = M.bootstrap_source_intervals(y, passed, pass_jd, save_jd, seed=3)
    for key in ("completeness", "purity", "median_delay_days"):
        lo, hi = ci[f"{key}_ci"]
        assert lo <= point[key] <= hi and lo < hi
    assert ci == M.bootstrap_source_intervals(y, passed, pass_jd, save_jd, seed=3)
    assert ci != M.bootstrap_source_intervals(y, passed, pass_jd, save_jd, seed=4)


def test_interval_width_follows_the_number_of_sources_not_alerts():
    """Completeness of 0.9 on 50 bright sources: the interval is about ±1.96 sqrt(.09/50) wide."""
    y = np.ones(50, int)
    passed = np.r_[np.ones(45, bool), np.zeros(5, bool)]
    lo, hi = M.bootstrap_source_intervals(y, passed, n_boot=4000, seed=0)["completeness_ci"]
    half = 1.96 * np.sqrt(0.9 * 0.1 / 50)
    assert hi - lo == pytest.approx(2 * half, rel=0.25)
    assert "median_delay_days_ci" not in M.bootstrap_source_intervals(y, passed)


def test_coverage_is_near_95_percent():
    """Over many simulated splits, the interval holds the true completeness about 95% of the time."""
    rng = np.random.default_rng(7)
    true, hits = 0.8, 0
    for trial in range(200):
        passed = rng.random(80) < true
        lo, hi = M.bootstrap_source_intervals(np.ones(80, int), passed, n_boot=400, seed=trial)["completeness_ci"]
        hits += lo <= true <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_degenerate_inputs_give_nan_not_errors():
    ci = M.bootstrap_source_intervals(np.zeros(5, int), np.zeros(5, bool), np.zeros(5), np.zeros(5))
    assert all(np.isnan(ci["completeness_ci"])) and all(np.isnan(ci["purity_ci"]))
    assert all(np.isnan(ci["median_delay_days_ci"]))
    assert all(np.isnan(M.bootstrap_source_intervals([], [])["completeness_ci"]))
    with pytest.raises(ValueError, match="differ in length"):
        M.bootstrap_source_intervals([1, 0], [True])


def test_auc_interval_resamples_sources():
    """Forty copies of each alert: resampling alerts would give a tiny interval; sources do not."""
    rng = np.random.default_rng(2)
    y1 = rng.integers(0, 2, 60)
    s1 = np.clip(y1 * 0.3 + rng.random(60), 0, None)
    y, s, g = np.repeat(y1, 40), np.repeat(s1, 40), np.repeat(np.arange(60), 40)
    lo, hi = M.bootstrap_auc_interval(y, s, g, n_boot=300, seed=0)
    by_source = M.bootstrap_auc_interval(y1, s1, np.arange(60), n_boot=300, seed=0)
    assert lo <= M.roc_auc(y, s) <= hi
    assert hi - lo == pytest.approx(by_source[1] - by_source[0], rel=0.3)


def test_outcome_fractions_of_bright_alerts():
    out = M.outcome_fractions([1, 1, 0, 0, 1], [0.9, 0.1, 0.8, 0.2, 0.7], [True, True, True, True, False])
    assert (out["n"], out["tp"], out["fn"], out["fp"], out["tn"]) == (4, 1, 1, 1, 1)
    assert out["tp_frac"] == 0.25


def test_report_carries_intervals(tmp_path, tiny_model, tiny_dataset):
    import pandas as pd

    from brightscan.evaluate.report import EvaluateConfig, evaluate

    table = pd.read_parquet(tiny_dataset / "test" / "alerts.parquet")
    saves = table[table["label"] == 1].groupby("objectId")["jd"].min() + 0.5
    (tmp_path / "saves.csv").write_text("objectId,save_jd\n" + "".join(f"{o},{t}\n" for o, t in saves.items()))
    grid = {"n": [1], "threshold": [0.0, 0.5], "max_magpsf": [None], "min_age": [None], "min_detections": [None]}
    evaluate(tiny_model, tiny_dataset, out=tmp_path / "report", scanner_saves=tmp_path / "saves.csv",
             config=EvaluateConfig(search_grid=grid))
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    for key in ("auc", "val_auc"):
        lo, hi = metrics["alert"][f"{key}_ci"]
        assert lo <= metrics["alert"][key] <= hi
    for name, pol in metrics["policies"].items():
        for key in ("completeness", "purity", "median_delay_days"):
            value, (lo, hi) = pol[key], pol[f"{key}_ci"]
            assert value is None or np.isnan(value) or lo - 1e-12 <= value <= hi + 1e-12, (name, key)
    validation = metrics["policies"]["optimised"]["validation"]
    assert validation["rule"] == "target" and len(validation["completeness_ci"]) == 2
    bright = metrics["outcomes_m_lt_18_5"]
    assert bright["n"] == int((table["magpsf"] < 18.5).sum()) == bright["tp"] + bright["fp"] + bright["tn"] + bright["fn"]
