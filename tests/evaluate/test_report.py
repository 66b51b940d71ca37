"""End to end: a random model saved by the model package, a tiny dataset directory, the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brightscan.errors import InputError
from brightscan import metrics as M
from brightscan.evaluate import report
from brightscan.evaluate.report import EvaluateConfig, evaluate
from evaluate.tiny import save_random_model

# threshold 0.0 passes every source, so the 99% target is always reachable with a random model
GRID = {"n": [1, 2], "threshold": [0.0, 0.3, 0.5], "max_magpsf": [None, 19.0], "min_age": [None],
        "min_detections": [None, 2]}
CONFIG = EvaluateConfig(search_grid=GRID)


def write_saves(ds: Path, path: Path) -> Path:
    table = pd.read_parquet(ds / "test" / "alerts.parquet")
    first = table[table["label"] == 1].groupby("objectId")["jd"].min() + 0.5
    lines = ["objectId,save_jd", *(f"{o},{t}" for o, t in first.items()), "ZTFnever,"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_report_contract(tmp_path, tiny_model, tiny_dataset):
    other = save_random_model(tmp_path / "other", seed=7)
    saves = write_saves(tiny_dataset, tmp_path / "saves.csv")
    out = tmp_path / "report"
    result = evaluate(tiny_model, tiny_dataset, out=out, scanner_saves=saves, compare=other, config=CONFIG)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result
    n_test = len(pd.read_parquet(tiny_dataset / "test" / "alerts.parquet"))
    for section in (on_disk, on_disk["compare"]):
        assert set(section["alert"]) >= {"auc", "accuracy", "precision", "recall", "n_alerts"}
        assert section["alert"]["n_alerts"] == n_test  # every alert, no N_max thinning
        assert isinstance(section["calibration"]["ece"], float)
        assert set(section["policies"]) == {"gt1", "gt2", "gt3", "bts_prod", "bts_prod_peak", "optimised",
                                            "bts_p1", "bts_p2", "prod_p1", "prod_p2"}
        for m in section["policies"].values():
            assert set(m) >= {"completeness", "purity", "n_sources", "median_delay_days"}
        # threshold 0 passes all sources: every bright one is identified, with a delay
        assert section["policies"]["gt1"]["n_sources"] == section["sources"]["n_selected"]
    assert on_disk["policies"]["optimised"]["completeness"] is not None
    assert on_disk["policies"]["optimised"]["validation"]["target_met"] is True
    figures = ("roc", "outcomes", "outcomes_compare", "completeness_purity", "delay", "reliability",
               "compare_sources")
    for png in figures:
        assert (out / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "index.html").read_text()
    for png in figures:
        assert f'id="fig-{png}"' in html
    galleries = on_disk["galleries"]
    n_triplets = sum(len(v) for k, v in galleries.items() if k != "counts")
    assert galleries["top_negatives"] and galleries["low_positives"] and galleries["earliest_saves"]
    assert all(g["label"] == 0 for g in galleries["top_negatives"])
    assert html.count('alt="triplet of ') == n_triplets
    assert html.count("data:image/png;base64,") == len(list(out.glob("*.png"))) + n_triplets
    assert not re.search(r'src="(?!data:)', html)  # self-contained: nothing fetched
    assert "(compare)" in html and "optimised" in html and "Side by side" in html
    assert '<meta name="viewport"' in html and "median delay vs scanners (days)" in html
    assert "median_delay_days" not in html.split("<body>")[1].split("<script>")[0]  # human column names
    # calibration: before/after on every model
    for section in (on_disk, on_disk["compare"]):
        assert {"ece_before", "ece_after", "temperature_fitted"} <= set(section["calibration"])


def test_peak_bins_cover_every_source():
    from brightscan.policy import ScoredAlert, ObjectHistory

    sources = [ObjectHistory(f"ZTF{i}", 0, (ScoredAlert(i, 1.0, 0.5, m),), peak_mag=m)
               for i, m in enumerate([14.2, 17.0, 20.7])]
    edges = report.peak_bins(sources)
    assert edges[0] <= 14.2 and edges[-1] > 20.7 and np.allclose(np.diff(edges), 0.5)


def test_intervals_render_when_present():
    from brightscan.pages import metric

    assert metric({"completeness": 0.9}, "completeness") == "0.900"
    assert metric({"completeness": 0.9, "completeness_ci": [0.8, 0.95]}, "completeness") == "0.900 [0.800, 0.950]"
    assert metric({"completeness": None, "completeness_ci": [0.8, 0.95]}, "completeness") == "–"


def test_alert_metrics_match_the_scorer(tmp_path, tiny_model, tiny_dataset):
    from brightscan.dataset import open_split
    from brightscan.score.scorer import Scorer

    result = evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", config=CONFIG)
    scorer = Scorer(tiny_model)
    data = open_split(tiny_dataset, "test", feature_names=scorer.loaded.feature_names)
    scores = scorer.score_arrays(np.array(data.triplets), data.features)
    y = data.table["label"].to_numpy(int)
    assert result["alert"]["auc"] == pytest.approx(M.roc_auc(y, scores))
    assert result["alert"]["accuracy"] == pytest.approx(M.alert_metrics(y, scores)["accuracy"])
    assert result["calibration"]["ece"] == pytest.approx(M.expected_calibration_error(y, scores))


def test_search_sees_only_validation_sources(tmp_path, tiny_model, tiny_dataset, monkeypatch):
    seen: list[str] = []

    class SpySearch(report.PolicySearch):
        def fit(self, val_sources):
            seen.extend(s.object_id for s in val_sources)
            return super().fit(val_sources)

    monkeypatch.setattr(report, "PolicySearch", SpySearch)
    first = evaluate(tiny_model, tiny_dataset, out=tmp_path / "r1", config=CONFIG)
    assert seen and all(o.startswith("ZTFval") for o in seen)
    # poison the test split (invert its labels): the chosen policy must not move
    path = tiny_dataset / "test" / "alerts.parquet"
    table = pd.read_parquet(path)
    table["label"] = 1 - table["label"]
    table.to_parquet(path, index=False)
    second = evaluate(tiny_model, tiny_dataset, out=tmp_path / "r2", config=CONFIG)
    assert first["policies"]["optimised"]["policy"] == second["policies"]["optimised"]["policy"]
    assert first["policies"]["gt1"]["completeness"] != second["policies"]["gt1"]["completeness"]


def test_calibrate_stores_temperature(tmp_path, tiny_model, tiny_dataset):
    from brightscan.model import read_card
    from brightscan.score.scorer import Scorer

    result = evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", calibrate=True, config=CONFIG)
    t = result["calibration"]["temperature"]
    assert result["calibration"]["fitted"] is True and t != 1.0
    assert read_card(tiny_model)["temperature"] == pytest.approx(t)
    assert Scorer(tiny_model).temperature == pytest.approx(t)
    assert "ece_before" in result["calibration"]


def test_val_split_and_missing_inputs_are_refused(tmp_path, tiny_model, tiny_dataset):
    with pytest.raises(InputError, match="val"):
        evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", split="val")
    with pytest.raises(InputError):
        evaluate(tiny_model, tmp_path / "nowhere", out=tmp_path / "r")
    with pytest.raises(InputError, match="scanner saves"):
        evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", scanner_saves=tmp_path / "none.csv")
