"""End to end: a random model saved by the model package, a tiny dataset directory, the report."""

from __future__ import annotations

import json
from html.parser import HTMLParser
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


class _Page(HTMLParser):
    """A page's structure: its elements' attributes by tag, their ids, and the text a reader sees
    (scripts and styles left out), so assertions do not depend on how the HTML is spelled."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.attrs: list[tuple[str, dict[str, str]]] = []
        self._hidden = 0
        self._text: list[str] = []
        self.feed(html)
        self.close()
        self.ids = {a["id"] for _, a in self.attrs if "id" in a}
        self.text = " ".join(" ".join(self._text).split())

    def elements(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.attrs if t == tag]

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.attrs.append((tag, {k: v or "" for k, v in attrs}))
        self._hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._text.append(data)


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
        # every policy is evaluated on every selected test source
        for m in section["policies"].values():
            assert m["n_sources"] == section["sources"]["n_selected"] > 0
            assert 0.0 <= m["completeness"] <= 1.0 and m["n_passed"] <= m["n_sources"]
    # threshold 0.0 is in the grid and passes every source, so the search reaches the 99% target on val
    validation = on_disk["policies"]["optimised"]["validation"]
    assert validation["target_met"] is True and validation["completeness"] >= 0.99
    figures = ("roc", "outcomes", "outcomes_compare", "completeness_purity", "delay", "reliability",
               "compare_sources")
    for png in figures:
        assert (out / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    page = _Page((out / "index.html").read_text())
    assert {f"fig-{png}" for png in figures} <= page.ids
    galleries = on_disk["galleries"]
    n_triplets = sum(len(v) for k, v in galleries.items() if k != "counts")
    assert galleries["top_negatives"] and galleries["low_positives"] and galleries["earliest_saves"]
    assert all(g["label"] == 0 for g in galleries["top_negatives"])
    images = page.elements("img")
    assert sum(a.get("alt", "").startswith("triplet of ") for a in images) == n_triplets
    assert len(images) == len(list(out.glob("*.png"))) + n_triplets
    assert all(a.get("src", "").startswith("data:image/png;base64,") for a in images)  # self-contained
    assert not [v for tag in ("script", "link", "iframe", "img") for a in page.elements(tag)
                for k, v in a.items() if k in ("src", "href") and not v.startswith("data:")]  # nothing fetched
    assert "(compare)" in page.text and "optimised" in page.text and "Side by side" in page.text
    assert any(a.get("name") == "viewport" for a in page.elements("meta"))
    assert "median delay vs scanners (days)" in page.text
    assert f"mean score {on_disk['faint_dim_sn']['mean_score']:.3f}" in page.text
    assert "median_delay_days" not in page.text  # human column names
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
    # the faint dim-SN mean: the SN II sources' alerts, all fainter than 18.5 mag, and no AGN's
    dim_sn = (data.table["class"] == "SN II").to_numpy()
    assert result["faint_dim_sn"]["n_alerts"] == dim_sn.sum() > 0
    assert result["faint_dim_sn"]["mean_score"] == pytest.approx(scores[dim_sn].mean())
    # where gt1's threshold could go on val, and the negative weight that would move 0.5 there
    point = result["gt1_operating_point"]
    assert point["target_completeness"] == CONFIG.target_completeness and "negative_weight" in point
    assert point["threshold"] is not None  # on test, gt1 at that threshold: gt1 of the model moved there
    at = M.source_metrics(*_gt1_on_test(result, data.table, scores, point["threshold"]))
    assert (point["on_test"]["completeness"], point["on_test"]["purity"]) == pytest.approx(
            (at["completeness"], at["purity"]), nan_ok=True)


def _gt1_on_test(result, table, scores, threshold):
    from brightscan.evaluate.objects import apply_policy, object_arrays
    from brightscan.policy import create_policy

    objects = report._selected_objects(table, scores, None, CONFIG)
    assert len(objects) == result["sources"]["n_selected"]
    arr = object_arrays(objects)
    passed, pass_jd = apply_policy(create_policy("gt1", threshold=threshold), objects)
    return arr["label"], passed, pass_jd, arr["save_jd"]


def test_faint_dim_sn_counts_only_faint_alerts_of_dim_supernovae():
    table = pd.DataFrame({"class": ["SN Ia", "SN II", "SN II", "AGN", None, "SN Ib"],
                          "label": [1, 0, 0, 0, 0, 0],
                          "magpsf": [19.0, 18.9, 18.2, 19.5, 19.5, 18.5]})
    scores = np.array([0.9, 0.4, 0.8, 0.7, 0.6, 0.99])
    # a bright SN, a dim SN's alert brighter than the limit, an AGN, no class and an alert at the limit are out
    assert report.faint_dim_sn_mean(table, scores) == {"mean_score": pytest.approx(0.4), "n_alerts": 1}
    assert report.faint_dim_sn_mean(table, scores, limit=18.0) == {"mean_score": pytest.approx(0.73), "n_alerts": 3}
    unlabelled = report.faint_dim_sn_mean(table.drop(columns="class"), scores)
    assert np.isnan(unlabelled["mean_score"]) and unlabelled["n_alerts"] == 0


def test_gt1_operating_point_is_the_highest_threshold_keeping_the_completeness():
    from brightscan.evaluate.objects import apply_policy, object_arrays
    from brightscan.policy import ObjectHistory, ScoredAlert, create_policy

    rng = np.random.default_rng(3)
    objects = []
    for i in range(200):  # bright sources' best scores 0.55-1, others' 0-0.95
        label = int(i < 80)
        top = rng.uniform(0.55, 1.0) if label else rng.uniform(0.0, 0.95)
        scores = [top * 0.5, top, top * 0.8]
        objects.append(ObjectHistory(f"o{i}", label, tuple(
            ScoredAlert(candid=10 * i + k, jd=2460000.0 + k, score=float(v), magpsf=18.0) for k, v in enumerate(scores))))
    point = report.gt1_operating_point(objects, 0.95)
    t = point["threshold"]
    assert point["negative_weight"] == pytest.approx(t / (1 - t), abs=1e-3)
    arr = object_arrays(objects)
    for threshold, keeps in ((t, True), (round(t + 0.01, 2), False)):  # t keeps 95%, the next step does not
        passed, pass_jd = apply_policy(create_policy("gt1", threshold=threshold), objects)
        m = M.source_metrics(arr["label"], passed, pass_jd, arr["save_jd"])
        assert (m["completeness"] >= 0.95) is keeps
        if keeps:  # the same figures as the gt1 policy itself at that threshold
            assert (point["completeness"], point["purity"]) == pytest.approx((m["completeness"], m["purity"]))
    assert report.gt1_operating_point(objects, 1.0)["threshold"] <= 0.55
    unreachable = [ObjectHistory("b", 1, (ScoredAlert(candid=1, jd=1.0, score=0.0, magpsf=18.0),))]
    assert report.gt1_operating_point(unreachable, 0.99)["threshold"] is None
    assert report.gt1_operating_point(objects[80:], 0.99) is None  # no bright source on val


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


def test_calibrate_writes_a_new_version_beside_the_report(tmp_path, tiny_model, tiny_dataset):
    from brightscan.model import read_card
    from brightscan.score.scorer import Scorer

    before = {p.name: p.read_bytes() for p in tiny_model.iterdir()}
    result = evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", calibrate=True, config=CONFIG)
    t = result["calibration"]["temperature"]
    assert result["calibration"]["fitted"] is True and t != 1.0
    assert {p.name: p.read_bytes() for p in tiny_model.iterdir()} == before  # the model read is unchanged
    written = tmp_path / "r" / "calibrated-model"
    assert result["calibration"]["written_to"] == str(written)
    card, original = read_card(written), read_card(tiny_model)
    assert card["temperature"] == pytest.approx(t) and card["weights"] == original["weights"]
    assert card["model_version"] == original["model_version"] + "+calibrated"
    assert card["provenance"]["calibrated_from"]["model_dir"] == str(tiny_model)
    assert Scorer(written).temperature == pytest.approx(t)
    assert "ece_before" in result["calibration"]
    again = evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", calibrate=True, config=CONFIG)  # a rerun
    assert again["calibration"]["temperature"] == pytest.approx(t) and read_card(written)["temperature"] == card["temperature"]


def test_a_non_finite_score_is_a_rejection_not_a_crash(tmp_path, tiny_model, tiny_dataset):
    import shutil

    import pyarrow.parquet as pq

    from brightscan.model import load_model

    dataset = shutil.copytree(tiny_dataset, tmp_path / "nan-dataset")
    path = dataset / "test" / "alerts.parquet"
    table = pq.read_table(path).to_pandas()
    feature = load_model(tiny_model).feature_names[0]
    table.loc[3, feature] = np.nan  # the model's input, hence its score, is NaN for this alert
    table.to_parquet(path, index=False)
    result = evaluate(tiny_model, dataset, out=tmp_path / "r", config=CONFIG)
    assert result["rejected"] == {"test": 1, "val": 0}
    assert result["alert"]["n_alerts"] == len(table) - 1
    rejected = pq.read_table(tmp_path / "r" / "rejected.parquet").to_pylist()
    assert [(r["candid"], r["stage"], r["reason"]) for r in rejected] == \
        [(int(table.loc[3, "candid"]), "score", "model score is not finite")]


def test_val_split_and_missing_inputs_are_refused(tmp_path, tiny_model, tiny_dataset):
    with pytest.raises(InputError, match="val"):
        evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", split="val")
    with pytest.raises(InputError):
        evaluate(tiny_model, tmp_path / "nowhere", out=tmp_path / "r")
    with pytest.raises(InputError, match="scanner saves"):
        evaluate(tiny_model, tiny_dataset, out=tmp_path / "r", scanner_saves=tmp_path / "none.csv")
