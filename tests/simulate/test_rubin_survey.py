"""The simulated Rubin survey: official-schema packets, FITS cutouts in nJy, labels, reproducibility."""

from __future__ import annotations

import csv
import hashlib
import io
import struct

import fastavro
import pytest
from astropy.io import fits

from brightscan.alerts import read_alerts
from brightscan.alerts.rubin import BANDS, RubinAlert
from brightscan.alerts.rubin_wire import rubin_schema
from brightscan.preprocess.pipeline import Pipeline
from brightscan.simulate.rubin import RubinSurveyConfig, simulate_rubin_survey


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    out = tmp_path_factory.mktemp("rubin")
    counts = simulate_rubin_survey(RubinSurveyConfig(n_sources=16, n_nights=8, seed=4), out)
    return out, counts


def test_packets_are_wire_messages_valid_against_lsst_v11(survey):
    out, counts = survey
    files = sorted((out / "alerts").rglob("*.avro"))
    assert len(files) == counts["alerts"] > 0
    parsed, _ = rubin_schema(1101)
    for path in files:
        data = path.read_bytes()
        assert data[0] == 0 and struct.unpack(">i", data[1:5])[0] == 1101
        stream = io.BytesIO(data[5:])
        record = fastavro.schemaless_reader(stream, parsed)
        assert stream.tell() == len(data) - 5
        assert fastavro.validation.validate(record, parsed, raise_errors=True)


def test_alerts_read_as_rubin_alerts_with_nJy_fits_cutouts_in_six_bands(survey):
    out, counts = survey
    alerts = list(read_alerts(out / "alerts"))
    assert all(isinstance(a, RubinAlert) for a in alerts) and len(alerts) == counts["alerts"]
    assert {a.candidate["band"] for a in alerts} <= set(BANDS)
    hdus = fits.open(io.BytesIO(alerts[0].cutouts["cutoutScience"]))
    assert [h.name for h in hdus] == ["PRIMARY", "UNCERT", "PSFIMAGE"] and hdus[0].header["BUNIT"] == "nJy"
    assert hdus[0].data.shape[0] in (30, 48, 60)
    chunk = Pipeline("rubin_v1").prepare(alerts)
    assert len(chunk) == len(alerts) and not chunk.rejections


def test_labels_follow_the_bright_limit_and_saves_are_listed(survey, tmp_path):
    out, counts = survey
    rows = list(csv.DictReader(open(out / "labels.csv")))
    assert len(rows) == 16 and sum(int(r["label"]) for r in rows) == counts["positive"]
    assert all(int(r["label"]) == 0 or float(r["peak_mag"]) < 18.5 for r in rows)
    loose = simulate_rubin_survey(RubinSurveyConfig(n_sources=16, n_nights=8, seed=4, bright_limit=25.0), tmp_path)
    assert loose["positive"] > counts["positive"]
    saves = list(csv.DictReader(open(out / "scanner_saves.csv")))
    assert len(saves) == 16 and sum(1 for s in saves if s["save_jd"]) == counts["saved"]


def test_the_same_seed_writes_the_same_bytes(survey, tmp_path):
    out, _ = survey
    simulate_rubin_survey(RubinSurveyConfig(n_sources=16, n_nights=8, seed=4), tmp_path)

    def digest(root):
        return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
                if p.is_file()}
    assert digest(out) == digest(tmp_path)
