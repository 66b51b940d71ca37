"""Drift per night over a real database: the simulator's nights replayed through the service, one
of them again with a feature shifted in its packets, compared with a reference built from the
survey's stored alerts (the same function training uses on its validation split).

The unshifted night is one of the reference's nights: the simulator's per-object features (host
distance, star-galaxy score...) are shared by all alerts of an object, so a second, independent
realisation of ~100 objects differs from the reference by object-sampling noise alone (KS about
0.1-0.2 on a trial with seed 4, 353 alerts), which ``[drift] min_alerts`` guards against."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import fastavro
import numpy as np
import pytest
import sqlalchemy as sa

from brightscan.autoscan.config import (AutoscanConfig, DriftConfig, LogSinkSettings, PolicyConfig, ServiceConfig,
                                        SinkConfig)
from brightscan.autoscan.drift import DriftMonitor, night_drift
from brightscan.autoscan.store import alerts, open_readonly
from brightscan.autoscan.write.runner import run_autoscan
from brightscan.model.reference import build_reference

pytestmark = pytest.mark.slow

NIGHT = "2023-03-02"
SURVEY = dict(n_sources=400, n_nights=3, start_date=date(2023, 3, 1), n_workers=1)


def _simulate(out: Path, seed: int) -> Path:
    from brightscan.simulate.config import SurveyConfig
    from brightscan.simulate.survey import simulate_survey

    simulate_survey(SurveyConfig(seed=seed, **SURVEY), out)
    return out / "alerts"


def _replay(alert_dirs: list[Path], model: Path, db: str, tmp_path: Path) -> None:
    config = AutoscanConfig(db_url=db, policy=PolicyConfig(name="gt1", params={"threshold": 0.99}),
                            sink=SinkConfig(kind="log", log=LogSinkSettings(path=str(tmp_path / "a.jsonl"))),
                            service=ServiceConfig(speedup=float("inf")))
    for directory in alert_dirs:
        run_autoscan(config, f"replay:{directory}", model)


def _shift(night_dir: Path, out: Path, feature: str, by: float) -> Path:
    """A copy of a night's packets with ``candidate[feature]`` shifted by ``by``."""
    out.mkdir(parents=True)
    for path in sorted(night_dir.iterdir()):
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            schema, records = reader.writer_schema, list(reader)
        for record in records:
            record["candidate"][feature] = float(record["candidate"][feature]) + by
        with open(out / path.name, "wb") as fh:
            fastavro.writer(fh, schema, records)
    return out


@pytest.fixture(scope="module")
def surveys(tmp_path_factory, tiny_model):
    """The survey replayed whole, and its night NIGHT replayed again with ``fwhm`` + 1.5 px."""
    root = tmp_path_factory.mktemp("drift")
    survey = _simulate(root / "survey", 3)
    ref_db, shifted_db = (f"sqlite:///{root / n}.db" for n in ("ref", "shifted"))
    _replay(sorted(survey.iterdir()), tiny_model, ref_db, root)
    _replay([_shift(survey / NIGHT.replace("-", ""), root / "shifted-night", "fwhm", 1.5)], tiny_model,
            shifted_db, root)
    return ref_db, shifted_db


def _reference_from(db: str, names: list[str]):
    """A reference built from a database's stored features and scores (as training builds one)."""
    store = open_readonly(db)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(alerts.c.features, alerts.c.score)).all()
    store.dispose()
    features = np.array([[r[0][n] for n in names] for r in rows], dtype=np.float64)
    return build_reference(features, names, np.array([r[1] for r in rows]))


def test_a_shifted_feature_is_flagged_and_an_unshifted_night_passes(surveys, tiny_model):
    from brightscan.model import read_card

    ref_db, shifted_db = surveys
    night_db = ref_db
    reference = _reference_from(ref_db, list(read_card(tiny_model)["features"]["order"]))
    config = DriftConfig(min_alerts=100)
    store = open_readonly(night_db)
    same = night_drift(store, reference, NIGHT, config)
    store.dispose()
    assert same.skipped is None and same.n_alerts >= 100
    assert same.flagged == [], same.to_dict()
    store = open_readonly(shifted_db)
    shifted = night_drift(store, reference, NIGHT.replace("-", ""), config)
    with store.engine.connect() as conn:
        recent = DriftMonitor(reference, config).recent(conn)
    store.dispose()
    assert shifted.flagged == ["fwhm"], shifted.to_dict()
    assert {"ra", "dec"}.isdisjoint(c.name for c in shifted.columns)
    by_name = {c.name: c for c in shifted.columns}
    assert by_name["fwhm"].psi > config.psi_max and by_name["fwhm"].ks > config.ks_max
    assert [r.night for r in recent] == [NIGHT] and recent[0].flagged == shifted.flagged


def test_no_reference_or_too_few_alerts_is_skipped_with_a_reason(surveys, tiny_model):
    night_db, _ = surveys
    store = open_readonly(night_db)
    assert "no reference" in night_drift(store, None, NIGHT).skipped
    reference = _reference_from(night_db, list(__import__("brightscan.model", fromlist=["read_card"])
                                              .read_card(tiny_model)["features"]["order"]))
    few = night_drift(store, reference, NIGHT, DriftConfig(min_alerts=100_000, max_alerts=100_000))
    sampled = night_drift(store, reference, NIGHT, DriftConfig(min_alerts=10, max_alerts=50))
    store.dispose()
    assert "fewer than" in few.skipped and few.flagged == []
    assert 40 <= sampled.n_compared <= 50 and sampled.n_alerts > 50


def test_status_page_and_metrics_show_the_flagged_night(surveys, tiny_model):
    import httpx

    from brightscan.model import read_card

    from .test_metrics import _samples
    from .test_web import Server

    ref_db, shifted_db = surveys
    reference = _reference_from(ref_db, list(read_card(tiny_model)["features"]["order"]))
    server = Server(shifted_db, drift=DriftMonitor(reference, DriftConfig(min_alerts=100)))
    try:
        data = httpx.get(f"{server.url}/status.json").json()["drift"]
        html = httpx.get(f"{server.url}/").text
        metrics = _samples(httpx.get(f"{server.url}/metrics").text)
    finally:
        server.stop()
    assert [n["night"] for n in data["nights"]] == [NIGHT] and data["nights"][0]["flagged"] == ["fwhm"]
    assert "flagged: fwhm" in html
    assert metrics[("brightscan_drift_flagged_columns", ())] == 1
    assert metrics[("brightscan_drift_psi", (("column", "fwhm"),))] > 0.2
    assert metrics[("brightscan_drift_ks", (("column", "score"),))] >= 0


def test_outcomes_carry_each_nights_drift(surveys, tiny_model, tmp_path):
    """``autoscan outcomes --model``: the shifted night is flagged in the report, its text and JSON."""
    from brightscan.autoscan.outcomes.run import run_outcomes
    from brightscan.autoscan.outcomes.text import format_report
    from brightscan.model import read_card

    ref_db, shifted_db = surveys
    reference = _reference_from(ref_db, list(read_card(tiny_model)["features"]["order"]))
    plain = tmp_path / "plain.csv"
    plain.write_text("objectId,bright,classified_at,type\nZTF23aaaaaaa,1,,SN Ia\n")
    report = run_outcomes(shifted_db, plain, reference=reference, drift_config=DriftConfig(min_alerts=100))
    assert set(report.drift) == {NIGHT}
    assert report.drift[NIGHT]["flagged"] == ["fwhm"]
    assert f"{NIGHT}: FLAGGED fwhm" in format_report(report)
    assert report.to_dict()["drift"][NIGHT]["flagged"] == ["fwhm"]
    assert run_outcomes(shifted_db, plain).drift is None  # no model given: no drift section
