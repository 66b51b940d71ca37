"""Output of the simulator: files, formats, identifiers, consistency between tables and packets."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections import defaultdict
from pathlib import Path

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from brightscan.alerts import Alert, read_alerts
from brightscan.simulate import BRIGHT_LIMIT, SurveyConfig, alert_schema, simulate_survey
from brightscan.simulate.schema import SYNC_MARKER, parsed_schema

CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


def _packets(survey: Path) -> list[dict]:
    out = []
    for path in sorted((survey / "alerts").glob("*/*.avro")):
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            records = list(reader)
        assert len(records) == 1
        out.append(records[0] | {"_path": path})
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _digest(survey: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(survey.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(survey)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_layout_and_naming(small_survey: Path) -> None:
    nights = sorted(p.name for p in (small_survey / "alerts").iterdir())
    assert nights and all(re.fullmatch(r"20\d{6}", n) for n in nights)
    for record in _packets(small_survey):
        assert record["_path"].name == f"{record['candid']}.avro"
        assert re.fullmatch(r"ZTF\d{2}[a-z]{7}", record["objectId"])
        assert record["schemavsn"] == "4.01"


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    config = SurveyConfig(n_sources=12, seed=3, n_nights=60, chunk_size=5)
    simulate_survey(config, tmp_path / "a")
    simulate_survey(SurveyConfig(n_sources=12, seed=3, n_nights=60, chunk_size=2, n_workers=1), tmp_path / "b")
    simulate_survey(SurveyConfig(n_sources=12, seed=4, n_nights=60, chunk_size=5), tmp_path / "c")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_packets_match_the_schema_types(small_survey: Path) -> None:
    packets = _packets(small_survey)
    candids = [p["candid"] for p in packets]
    assert len(set(candids)) == len(candids)
    assert all(0 < c < 2**63 for c in candids)
    # re-encoding with the declared schema validates every field's type and nullability
    for record in packets[:50]:
        record = {k: v for k, v in record.items() if k != "_path"}
        assert fastavro.validate(record, parsed_schema(), raise_errors=True)
        buf = io.BytesIO()
        fastavro.writer(buf, parsed_schema(), [record], sync_marker=SYNC_MARKER)
        assert buf.getvalue() == record_bytes(small_survey, record["candid"])


def record_bytes(survey: Path, candid: int) -> bytes:
    return next((survey / "alerts").glob(f"*/{candid}.avro")).read_bytes()


def test_schema_has_the_fields_the_published_models_use() -> None:
    candidate = {f["name"]: f["type"] for f in alert_schema()["fields"][4]["type"]["fields"]}
    needed = ("sgscore1 distpsnr1 sgscore2 distpsnr2 fwhm magpsf sigmapsf chipsf ra dec diffmaglim ndethist "
              "nmtchps jd jdstarthist drb rb ncovhist chinr sharpnr scorr sky fid isdiffpos candid programid "
              "field rcid magzpsci srmag1").split()
    assert set(needed) <= set(candidate)
    assert candidate["candid"] == "long" and candidate["jd"] == "double" and candidate["magpsf"] == "float"
    assert candidate["ndethist"] == "int" and candidate["drb"] == ["null", "float"]


def test_candidates_are_complete_and_consistent(small_survey: Path) -> None:
    needed = ("sgscore1 distpsnr1 sgscore2 distpsnr2 fwhm magpsf sigmapsf chipsf ra dec diffmaglim ndethist "
              "nmtchps jd jdstarthist drb rb ncovhist chinr sharpnr scorr sky magzpsci srmag1").split()
    for record in _packets(small_survey):
        c = record["candidate"]
        assert all(c[name] is not None and np.isfinite(c[name]) for name in needed)
        assert c["candid"] == record["candid"] and c["isdiffpos"] == "t" and c["fid"] in (1, 2)
        assert c["jdstarthist"] <= c["jd"] and c["ncovhist"] >= c["ndethist"] >= 1
        prv = record["prv_candidates"] or []
        assert all(c["jd"] - 30 <= p["jd"] < c["jd"] for p in prv)
        detections = [p for p in prv if p["candid"] is not None]
        assert c["ndethist"] >= len(detections) + 1
        for p in prv:
            if p["candid"] is None:  # a non-detection: an upper limit only, like ZTF
                assert p["magpsf"] is None and p["diffmaglim"] is not None
            else:
                assert p["magpsf"] is not None and p["isdiffpos"] == "t"


def test_cutouts_decode_like_real_stamps(small_survey: Path) -> None:
    for record in _packets(small_survey)[::7]:
        images = []
        for name in CUTOUTS:
            with fits.open(io.BytesIO(gzip.decompress(record[name]["stampData"]))) as hdul:
                header, data = hdul[0].header, hdul[0].data
                assert header["BITPIX"] == -32 and data.dtype == np.dtype(">f4")
                assert data.shape[0] <= 63 and data.shape[1] <= 63 and min(data.shape) > 31
                assert np.isfinite(data).all()
                images.append(data.astype(float))
        science, template, difference = images
        assert 30 < np.median(science) < 1500 and 30 < np.median(template) < 1500
        assert abs(np.median(difference)) < 5 * np.std(difference[:10, :10]) + 1


def test_labels_and_scanner_saves(small_survey: Path) -> None:
    labels = _csv(small_survey / "labels.csv")
    saves = _csv(small_survey / "scanner_saves.csv")
    assert [r["objectId"] for r in labels] == [r["objectId"] for r in saves]
    assert len({r["objectId"] for r in labels}) == 40
    by_object = defaultdict(list)
    for record in _packets(small_survey):
        by_object[record["objectId"]].append(record["candidate"])
    for row in labels:  # the label is the observed one; the true peak's is kept beside it
        observed = row["class"].startswith("SN") and any(c["magpsf"] < BRIGHT_LIMIT for c in by_object[row["objectId"]])
        assert int(row["label"]) == int(row["label_observed"]) == int(observed)
        assert int(row["label_true_peak"]) == int(row["class"].startswith("SN") and float(row["peak_mag"]) < BRIGHT_LIMIT)
    for row in labels:
        assert int(row["n_alerts"]) == len(by_object.get(row["objectId"], []))
    for row in saves:
        if row["save_jd"]:
            alerts = sorted(by_object[row["objectId"]], key=lambda c: c["jd"])
            bright = [c["jd"] for c in alerts if c["magpsf"] < 19.0]
            assert len(bright) >= 2 and float(row["save_jd"]) > bright[1]


def test_read_by_our_reader_and_as_tarballs(small_survey: Path, tmp_path: Path) -> None:
    items = list(read_alerts(small_survey / "alerts"))
    assert items and all(isinstance(x, Alert) for x in items)
    simulate_survey(SurveyConfig(n_sources=6, seed=2, n_nights=40, tarball=True, n_workers=1), tmp_path / "t")
    tarballs = sorted((tmp_path / "t" / "alerts").iterdir())
    assert tarballs and all(re.fullmatch(r"ztf_public_\d{8}\.tar\.gz", p.name) for p in tarballs)
    n_alerts = sum(int(r["n_alerts"]) for r in _csv(tmp_path / "t" / "labels.csv"))
    assert sum(isinstance(x, Alert) for x in read_alerts(tmp_path / "t" / "alerts")) == n_alerts


def test_refuses_to_mix_with_existing_alerts(small_survey: Path) -> None:
    from brightscan.errors import InputError

    with pytest.raises(InputError):
        simulate_survey(SurveyConfig(n_sources=2), small_survey)


def test_observed_label_follows_the_alerts_not_the_true_peak() -> None:
    from brightscan.errors import ConfigError
    from brightscan.simulate.packets import observed_label

    assert observed_label("bright_sn", np.array([19.2, 18.49, 18.9])) == 1
    assert observed_label("bright_sn", np.array([18.6, 18.5])) == 0  # true peak < 18.5, never seen so
    assert observed_label("dim_sn", np.array([18.4])) == 1  # noise: BTS would have saved it
    assert observed_label("agn", np.array([17.0])) == 0
    assert observed_label("bright_sn", np.array([])) == 0
    with pytest.raises(ConfigError, match="label_from"):
        SurveyConfig(label_from="truth").validate()
