"""``autoscan outcomes``: classification readers, and the figures of a real database written by
``autoscan run`` checked against counts worked out by hand below."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from brightscan.autoscan.config import AutoscanConfig, LogSinkSettings, PolicyConfig, ServiceConfig, SinkConfig
from brightscan.autoscan.outcomes import compute_outcomes, format_report, read_classifications
from brightscan.autoscan.store import alerts, open_readonly
from brightscan.autoscan.write.runner import run_autoscan
from brightscan.cli.main import app
from brightscan.errors import InputError

from .conftest import NIGHT_JD0, object_id, write_night

BTS_HEADER = "ZTFID,IAUID,RA,Dec,peakt,peakfilt,peakmag,peakabs,duration,rise,fade,type,redshift,b,A_V"
TNS_HEADER = ('"objid","name_prefix","name","ra","declination","redshift","typeid","type","reporting_groupid",'
              '"reporting_group","source_groupid","source_group","discoverydate","discoverymag","discmagfilter",'
              '"filter","reporters","time_received","internal_names","creationdate","lastmodified"')


def _bts_line(oid: str, type_: str, peakmag: str, ra: str = "12:02:05.86", dec: str = "+59:35:36.9") -> str:
    return f"{oid},SN2025abc,{ra},{dec},1000.50,r,{peakmag},-19.1,20.0,10.0,15.0,{type_},0.03,40.1,0.05"


def _tns_line(objid: int, prefix: str, name: str, ra: str, dec: str, type_: str, mag: str, internal: str) -> str:
    return (f'"{objid}","{prefix}","{name}","{ra}","{dec}","","","{type_}","","ZTF","","ZTF",'
            f'"2025-11-21 04:00:00.000","{mag}","r","r","A. B.","2025-11-21 05:00:00","{internal}",'
            f'"2025-11-21 05:00:00","2025-11-25 10:00:00"')


def test_bts_explorer_rows_and_bad_rows(tmp_path):
    path = tmp_path / "bts.csv"
    path.write_text("\n".join([
        BTS_HEADER,
        _bts_line("ZTF25aaaaaaa", "SN Ia", "17.90"),
        _bts_line("ZTF25aaaaaab", "II", "18.50"),  # no "SN " prefix; 18.5 is still bright
        _bts_line("ZTF25aaaaaac", "Ia", "18.51"),  # dim
        _bts_line("ZTF25aaaaaad", "AGN", "16.0"),
        _bts_line("ZTF25aaaaaae", "-", "17.0"),  # not classified yet
        _bts_line("ZTF25aaaaaaf", "SN Ia", "17.0", ra="xx:yy"),  # bad RA
        _bts_line("not-an-id", "SN Ia", "17.0"),
        "ZTF25aaaaaag,SN2025x,1.0",  # short row
        _bts_line("ZTF25aaaaaah", "SN Ia", "17.0", ra="180.5", dec="-10.25"),  # decimal degrees
    ]) + "\n")
    table = read_classifications(path)
    assert table.format == "bts"
    by_id = {r.object_id: r for r in table.rows}
    assert [by_id[f"ZTF25aaaaaa{c}"].bright for c in "abcdeh"] == [True, True, False, False, None, True]
    a = by_id["ZTF25aaaaaaa"]
    assert a.ra == pytest.approx((12 + 2 / 60 + 5.86 / 3600) * 15) and a.dec == pytest.approx(59 + 35 / 60 + 36.9 / 3600)
    assert by_id["ZTF25aaaaaah"].ra == 180.5 and by_id["ZTF25aaaaaah"].dec == -10.25
    assert by_id["ZTF25aaaaaae"].type is None
    assert [(e.line, e.reason.split(" ")[0]) for e in table.errors] == [(7, "RA"), (8, "ZTFID"), (9, "3")]
    assert "not a ZTF objectId" in str(table.errors[1]) and str(table.errors[0]).startswith("line 7:")


def test_tns_file_with_its_date_line(tmp_path):
    path = tmp_path / "tns_public_objects.csv"
    path.write_text("\n".join([
        '"2025-11-26 00:00:00"', TNS_HEADER,
        _tns_line(1, "SN", "2025abc", "150.1", "2.2", "SN Ia", "18.1", "ZTF25aaaaaaa, ATLAS25xyz"),
        _tns_line(2, "AT", "2025abd", "150.2", "2.3", "", "17.5", "ATLAS25abc"),
        _tns_line(3, "SN", "2025abe", "150.3", "2.4", "SN IIn", "18.9", ""),
        _tns_line(4, "SN", "2025abf", "999", "2.4", "SN Ia", "17.0", ""),
    ]) + "\n")
    table = read_classifications(path, "tns")
    assert table.format == "tns" and len(table.rows) == 3
    first, second, third = table.rows
    assert first.object_id == "ZTF25aaaaaaa" and first.name == "SN 2025abc" and first.bright is True
    assert first.classified_jd == pytest.approx(2461004.9166667)  # lastmodified 2025-11-25 10:00 UTC
    assert second.object_id is None and second.bright is None and second.classified_jd is None
    assert third.bright is False  # discovery at 18.9 mag: not bright by the rule
    assert [e.line for e in table.errors] == [6] and "ra '999' is outside" in table.errors[0].reason


def test_plain_file_and_format_checks(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("objectId,bright,classified_at,type\nZTF25aaaaaaa,1,2025-11-23T10:00:00,SN Ia\n"
                    "ZTF25aaaaaab,0,,AGN\nZTF25aaaaaac,,,\nZTF25aaaaaad,maybe,,\n")
    table = read_classifications(path, "auto")
    assert table.format == "plain" and [r.bright for r in table.rows] == [True, False, None]
    assert table.errors[0].line == 5 and "maybe" in table.errors[0].reason
    with pytest.raises(InputError, match="no bts columns"):
        read_classifications(path, "bts")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="none of the BTS explorer, TNS or plain formats"):
        read_classifications(tmp_path / "other.csv")


def _run(night_dir, model, db_url, tmp_path, params):
    config = AutoscanConfig(db_url=db_url, policy=PolicyConfig(name="gt1", params=params),
                            sink=SinkConfig(kind="log", log=LogSinkSettings(path=str(tmp_path / "actions.jsonl"))),
                            service=ServiceConfig(speedup=float("inf")))
    return run_autoscan(config, f"replay:{night_dir}", model)


@pytest.fixture
def two_nights(real_avro_dir, tiny_model, db_url, tmp_path):
    """Sources 0-5 on 2025-11-21 and 6-8 on 2025-11-22 all saved (threshold 0); 9-11 on 2025-11-22
    never saved (no alert is brighter than magnitude 0)."""
    rows = write_night(real_avro_dir, tmp_path / "a", n_sources=6, per_source=2, seed=1)
    rows += write_night(real_avro_dir, tmp_path / "b", n_sources=3, per_source=2, seed=2, jd0=NIGHT_JD0 + 1,
                        first_source=6)
    rows += write_night(real_avro_dir, tmp_path / "c", n_sources=3, per_source=3, seed=3, jd0=NIGHT_JD0 + 1,
                        first_source=9, mag0=18.6)  # 18.6, 18.5, 18.4 mag: at BTS's limit from the 2nd alert
    never = {"threshold": 0.0, "max_magpsf": 0.0}
    for folder, params in (("a", {"threshold": 0.0}), ("b", {"threshold": 0.0}), ("c", never)):
        _run(tmp_path / folder, tiny_model, db_url, tmp_path, params)
    first_jd = {}
    for r in rows:
        first_jd[r["objectId"]] = min(first_jd.get(r["objectId"], r["jd"]), r["jd"])
    return db_url, first_jd


def _bts_file(tmp_path):
    o = [object_id(i) for i in range(12)]
    lines = [BTS_HEADER,
             _bts_line(o[0], "SN Ia", "17.9"), _bts_line(o[1], "SN II", "18.4"),  # saved, bright
             _bts_line(o[2], "SN Ia", "18.9"), _bts_line(o[3], "AGN", "17.0"),  # saved, not bright
             _bts_line(o[4], "-", "17.5"),  # saved, not classified yet; o[5] absent: not bright
             _bts_line(o[6], "SN Ia", "18.0"), _bts_line(o[7], "CV", "16.0"),  # night 2; o[8] absent
             _bts_line(o[9], "SN Ic", "18.2"),  # bright, never saved: the miss
             _bts_line(o[10], "SN Ia", "19.2"), _bts_line(o[11], "-", "18.0"),  # not saved, not bright
             _bts_line("ZTF25zzzzzzz", "SN Ia", "17.0"),  # bright, never in the feed
             _bts_line(object_id(20), "SN Ia", "bright")]  # bad peakmag
    path = tmp_path / "bts.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_outcomes_match_hand_counts(two_nights, tmp_path):
    db_url, first_jd = two_nights
    o = [object_id(i) for i in range(12)]
    saves = tmp_path / "saves.csv"  # humans saved o0 6 h after autoscan's pass, o1 12 h before it
    saves.write_text(f"objectId,save_jd\n{o[0]},{first_jd[o[0]] + 0.25}\n{o[1]},{first_jd[o[1]] - 0.5}\n{o[6]},\n")
    runner = CliRunner()
    result = runner.invoke(app, ["autoscan", "outcomes", "--db", db_url, "--classifications", str(_bts_file(tmp_path)),
                                 "--saves", str(saves), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    overall = data["overall"]
    # saved o0..o8 (9); bright saved o0 o1 o6 (3); false o2 o3 o5 o7 o8 (5); unclassified o4 (1)
    assert (overall["n_saved"], overall["n_saved_bright"], overall["n_false_saves"], overall["n_saved_unclassified"]) == (9, 3, 5, 1)
    assert overall["purity"] == pytest.approx(3 / 8)
    # bright in the feed: o0 o1 o6 o9; missed o9
    assert (overall["n_bright"], overall["n_missed"], overall["completeness"]) == (4, 1, pytest.approx(3 / 4))
    # delays: o0 -0.25 d, o1 +0.5 d: median 0.125 d
    assert overall["median_delay_days"] == pytest.approx(0.125) and overall["n_delays"] == 2
    for key in ("purity", "completeness"):
        lo, hi = overall[f"{key}_ci"]
        assert 0.0 <= lo <= overall[key] <= hi <= 1.0
    n1, n2 = data["by_night"]["2025-11-21"], data["by_night"]["2025-11-22"]
    assert (n1["purity"], n1["completeness"]) == (pytest.approx(2 / 5), 1.0)
    assert (n2["purity"], n2["completeness"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert list(data["by_week"]) == ["2025-W47"] and data["by_week"]["2025-W47"]["n_saved"] == 9
    assert data["n_bright_not_in_feed"] == 1 and data["classifications"]["rejected"] == 1
    assert "line 13" in data["classifications"]["rejected_first"][0]
    # the lists carry the deciding alert: the first alert of each false save (threshold 0) ...
    assert sorted(x["object_id"] for x in data["false_saves"]) == [o[2], o[3], o[5], o[7], o[8]]
    for x in data["false_saves"]:
        assert x["jd"] == pytest.approx(first_jd[x["object_id"]])
        assert x["candid"] == 3_000_000_000_000_000_000 + int(o.index(x["object_id"])) * 1000
    # ... and the highest-scoring alert of the miss, read here straight from the database
    (miss,) = data["misses"]
    store = open_readonly(db_url)
    with store.engine.connect() as conn:
        best = conn.execute(sa.select(alerts.c.candid, alerts.c.score).where(alerts.c.object_id == o[9])
                            .order_by(alerts.c.score.desc())).first()
    store.dispose()
    assert (miss["object_id"], miss["candid"], miss["score"]) == (o[9], best.candid, pytest.approx(best.score))
    assert miss["type"] == "SN Ic" and miss["night"] == "2025-11-22"
    # the text form shows the same numbers
    text = runner.invoke(app, ["autoscan", "outcomes", "--db", db_url, "--classifications",
                               str(tmp_path / "bts.csv"), "--saves", str(saves)])
    assert text.exit_code == 0, text.output
    assert "0.38 [" in text.stdout and "0.75 [" in text.stdout and "+3.0 [" in text.stdout  # 0.125 d = 3 h
    assert f"{o[9]}" in text.stdout.split("misses")[1]


def test_outcomes_period_and_position_match(two_nights, tmp_path):
    db_url, first_jd = two_nights
    o = [object_id(i) for i in range(12)]
    store = open_readonly(db_url)
    with store.engine.connect() as conn:
        features = conn.execute(sa.select(alerts.c.features).where(alerts.c.object_id == o[6])).scalars().first()
    features = json.loads(features) if isinstance(features, str) else features
    ra, dec = features["ra"], features["dec"]
    path = tmp_path / "tns.csv"
    path.write_text("\n".join([
        '"2025-11-30 00:00:00"', TNS_HEADER,
        # o6 known only by position, 1 arcsec north: matched by position, bright
        _tns_line(1, "SN", "2025aaa", f"{ra}", f"{dec + 1 / 3600}", "SN Ia", "17.5", ""),
        # 30 arcsec away from everything on the sky it was put on: bright, unmatched
        _tns_line(2, "SN", "2025aab", f"{(ra + 90) % 360}", "0.0", "SN II", "17.0", ""),
    ]) + "\n")
    report = compute_outcomes(store, read_classifications(path), since_jd=NIGHT_JD0 + 0.9, radius_arcsec=2.0)
    store.dispose()
    # only 2025-11-22 is in the period: o6..o11 seen, o6 o7 o8 saved
    assert report.n_objects_seen == 6 and list(report.by_night) == ["2025-11-22"]
    got = {x.object_id: x for x in report.objects}
    assert got[o[6]].outcome == "saved_bright" and got[o[6]].match == "position 1.0 arcsec"
    assert got[o[6]].name == "SN 2025aaa"
    assert got[o[7]].outcome == got[o[8]].outcome == "false_save"  # absent from a TNS file: not bright
    assert report.overall.purity == pytest.approx(1 / 3) and report.overall.completeness == 1.0
    assert report.n_position_unmatched == 1
    assert report.drift is None and "input drift" not in format_report(report)
    report.drift = {"2025-11-22": {"flagged": ["fwhm"], "skipped": None}}
    assert "2025-11-22: FLAGGED fwhm" in format_report(report)


def test_outcomes_refuse_a_bad_period(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'none.db'}"
    result = CliRunner().invoke(app, ["autoscan", "outcomes", "--db", db_url, "--classifications",
                                      str(_bts_file(tmp_path)), "--since", "2025-11-22", "--until", "2025-11-21"])
    assert result.exit_code != 0 and "is not after" in result.output


def test_outcomes_page_written_and_served(two_nights, tmp_path):
    pytest.importorskip("uvicorn", reason="the status page needs the web extra")
    import httpx

    from .test_web import Server

    db_url, _ = two_nights
    bts = _bts_file(tmp_path)
    result = CliRunner().invoke(app, ["autoscan", "outcomes", "--db", db_url, "--classifications", str(bts),
                                      "--html", str(tmp_path / "page"), "--quiet"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "page" / "index.html").read_text()
    assert {p.name for p in (tmp_path / "page").iterdir()} == {"index.html", "nights.png", "scores.png"}
    assert "0.38 [" in html and "False saves (5)" in html and "Misses (1)" in html and object_id(9) in html
    server = Server(db_url, classifications=str(bts), token="s3cret")
    try:
        assert httpx.get(f"{server.url}/outcomes").status_code == 401
        bearer = {"Authorization": "Bearer s3cret"}
        status = httpx.get(f"{server.url}/", headers=bearer).text
        assert 'href="/outcomes">outcomes</a>' in status and "s3cret" not in status
        page = httpx.get(f"{server.url}/outcomes", headers=bearer)
        assert page.status_code == 200 and "False saves (5)" in page.text and "data:image/png;base64," in page.text
        data = httpx.get(f"{server.url}/outcomes.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert data["overall"]["purity"] == pytest.approx(3 / 8) and data["overall"]["completeness"] == pytest.approx(3 / 4)
    finally:
        server.stop()
    # without a classification file the status page neither links nor serves it
    plain = Server(db_url)
    try:
        assert "/outcomes" not in httpx.get(f"{plain.url}/").text
        assert httpx.get(f"{plain.url}/outcomes").status_code == 404
    finally:
        plain.stop()


def test_outcomes_page_in_a_browser(browser, two_nights, tmp_path):
    from browser import PHONE, check_layout

    db_url, _ = two_nights
    result = CliRunner().invoke(app, ["autoscan", "outcomes", "--db", db_url, "--classifications",
                                      str(_bts_file(tmp_path)), "--html", str(tmp_path / "page"), "--quiet"])
    assert result.exit_code == 0, result.output
    pages = check_layout(browser, (tmp_path / "page" / "index.html").as_uri())
    page = pages[PHONE]
    assert len(page.images("figure img")) == 2
    false_saves = page.rows("#false-saves + .scroll table")
    assert sorted(r.split("\t")[0] for r in false_saves) == sorted(object_id(i) for i in (2, 3, 5, 7, 8))
    assert [r.split("\t")[0] for r in page.rows("#misses + .scroll table")] == [object_id(9)]
    for p in pages.values():
        p.close()


def test_hostile_rows_are_rejected_one_by_one(tmp_path):
    path = tmp_path / "bts.csv"
    huge = "x" * 200_000  # over the csv module's field limit
    path.write_text("\n".join([BTS_HEADER, _bts_line("ZTF25aaaaaaa", "SN Ia", "17.9"),
                               f'ZTF25aaaaaab,"{huge}",1,2,3,r,17,-19,1,1,1,SN Ia,0.1,1,1',
                               _bts_line("ZTF25aaaaaac", "SN Ia", "nan"), _bts_line("ZTF25aaaaaad", "SN Ia", "1e400"),
                               _bts_line("ZTF25aaaaaae", "SN II", "18.0", dec="+91:00:00")]) + "\n")
    table = read_classifications(path)
    assert [r.object_id for r in table.rows] == ["ZTF25aaaaaaa", "ZTF25aaaaaac"]
    assert table.rows[1].bright is False  # an SN without a peak magnitude is not called bright
    assert [(e.line, e.reason.split(":")[0].split(" ")[0]) for e in table.errors] == [(3, "unreadable"), (5, "peakmag"), (6, "Dec")]
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not UTF-8"):
        read_classifications(tmp_path / "binary.csv")


@pytest.mark.parametrize("type_, sn", [
    ("SN Ia", True), ("Ia", True), ("Ia-91T", True), ("Ib/c", True), ("Ic-BL", True), ("SN IIP", True),
    ("IIn", True), ("SLSN-I", True), ("Ca-rich", True), ("SN", True), ("TDE", False), ("AGN", False),
    ("CV", False), ("nova", False), ("LBV", False), ("ILRT", False), ("LRN", False), ("Other", False)])
def test_sn_like_types(type_, sn):
    from brightscan.autoscan.outcomes.classifications import is_sn_like

    assert is_sn_like(type_) is sn
