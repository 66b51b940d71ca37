"""The simulator's classification file (``bts_explorer.csv``) and ``autoscan outcomes`` over a
replay of simulated nights: the figures are checked against the simulator's own labels, counted
here from labels.csv, the file's ``type`` column and the database's ``sources`` table with the
standard library only."""

from __future__ import annotations

import csv
import datetime
import sqlite3

import pytest

from brightscan.autoscan.config import AutoscanConfig, LogSinkSettings, PolicyConfig, ServiceConfig, SinkConfig
from brightscan.autoscan.outcomes import read_classifications
from brightscan.autoscan.outcomes.run import run_outcomes
from brightscan.autoscan.write.runner import run_autoscan
from brightscan.simulate.classifications import BTS_COLUMNS
from brightscan.simulate.config import SurveyConfig
from brightscan.simulate.survey import simulate_survey


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("survey")
    simulate_survey(SurveyConfig(n_sources=160, n_nights=30, seed=3, n_workers=1), out)
    return out


def test_classification_file_follows_the_labels(survey):
    with open(survey / "bts_explorer.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == BTS_COLUMNS
        rows = {r["ZTFID"]: r for r in reader}
    labels = {r["objectId"]: r for r in csv.DictReader(open(survey / "labels.csv", newline=""))}
    table = read_classifications(survey / "bts_explorer.csv")
    assert table.format == "bts" and table.errors == [] and len(table.rows) == len(rows)
    positives = {oid for oid, r in labels.items() if r["label"] == "1"}
    assert positives <= set(rows)  # every bright SN BTS saw is listed
    for row in table.rows:
        if row.bright is not None:  # classified: the bright rule gives the simulator's label
            assert int(row.bright) == int(labels[row.object_id]["label"]), row.object_id
    unclassified = [r for r in rows.values() if r["type"] == "-"]
    assert 0 < len(unclassified) < len(rows) / 2  # a share, from delays and never-classified objects
    assert all(labels[oid]["class"] in ("SN Ia", "SN II", "SN Ib/c", "AGN", "CV") for oid in rows)


def _expected(db_path, labels, types, since_jd):
    """Saved / bright / unknown sets of the period from ``since_jd`` on, by plain SQL."""
    with sqlite3.connect(db_path) as conn:
        seen = {r[0] for r in conn.execute("SELECT DISTINCT object_id FROM alerts WHERE jd >= ?", (since_jd,))}
        reached = {r[0] for r in conn.execute(
            "SELECT DISTINCT object_id FROM alerts WHERE jd >= ? AND magpsf <= 18.5", (since_jd,))}
        passed = dict(conn.execute("SELECT object_id, identified_jd FROM sources WHERE policy_state = 'passed'"))
    before = {o for o, jd in passed.items() if jd < since_jd}  # decisions of an earlier period
    saved = {o for o in seen if o in passed} - before
    unknown = {o for o in seen if types.get(o) == "-"}
    bright = ({o for o in seen if labels[o] == 1} - unknown - before) & (saved | reached)
    return saved, bright, unknown


def test_outcomes_of_replayed_nights_match_the_labels(survey, tiny_model, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'autoscan.db'}"
    # pass an object at its first alert brighter than 18 mag: bright SNe peaking at 18-18.5 are missed
    config = AutoscanConfig(db_url=db_url, policy=PolicyConfig(name="gt1", params={"threshold": 0.0, "max_magpsf": 18.0}),
                            sink=SinkConfig(kind="log", log=LogSinkSettings(path=str(tmp_path / "actions.jsonl"))),
                            service=ServiceConfig(speedup=float("inf")))
    nights = sorted((survey / "alerts").iterdir())[-5:]
    for night in nights:
        run_autoscan(config, f"replay:{night}", tiny_model)
    labels = {r["objectId"]: int(r["label"]) for r in csv.DictReader(open(survey / "labels.csv", newline=""))}
    types = {r["ZTFID"]: r["type"] for r in csv.DictReader(open(survey / "bts_explorer.csv", newline=""))}
    since = f"{nights[2].name[:4]}-{nights[2].name[4:6]}-{nights[2].name[6:]}"
    since_jd = 2440587.5 + (datetime.date.fromisoformat(since) - datetime.date(1970, 1, 1)).days
    for period_start, start_jd in ((None, 0.0), (since, since_jd)):
        report = run_outcomes(db_url, survey / "bts_explorer.csv", saves=survey / "scanner_saves.csv",
                              since=period_start)
        saved, bright, unknown = _expected(tmp_path / "autoscan.db", labels, types, start_jd)
        assert saved and bright - saved, "the policy should both save and miss here"
        f = report.overall
        assert f.n_saved == len(saved) and f.n_saved_unclassified == len(saved & unknown)
        assert f.n_saved_bright == len(saved & bright) and f.n_false_saves == len(saved - bright - unknown)
        assert f.n_bright == len(bright) and f.n_missed == len(bright - saved)
        assert f.purity == pytest.approx(len(saved & bright) / len(saved - unknown))
        assert f.completeness == pytest.approx(len(saved & bright) / len(bright))
        assert {o.object_id for o in report.of("missed")} == bright - saved
        assert sum(x.n_saved for x in report.by_night.values()) == f.n_saved
