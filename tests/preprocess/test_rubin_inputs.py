"""Rubin model inputs: the triplet's size policy and normalisation, causal features, cross-match,
and the survey contract (a ZTF alert never meets a Rubin feature set, nor the reverse)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from astropy.io import fits

from brightscan.alerts import Alert, Rejection, read_alerts
from brightscan.alerts.rubin import RubinAlert, rubin_alert_from_record
from brightscan.errors import CutoutError, FeatureError, SurveyMismatchError
from brightscan.preprocess import (
    RUBIN_FEATURE_SETS,
    StarGalaxyCatalog,
    make_rubin_triplet,
    preprocess_alert,
)
from brightscan.preprocess.pipeline import Pipeline
from brightscan.preprocess.rubin import compute_rubin_features, fit_stamp, rubin_named_features
from tests.alerts.test_rubin import fake_sample
from tests.conftest import require_shared


def rubin_fits(image: np.ndarray) -> bytes:
    """A cutout as Rubin writes it: PRIMARY (nJy), UNCERT (variance), PSFIMAGE."""
    hdus = fits.HDUList([fits.PrimaryHDU(image.astype(">f4")),
                         fits.ImageHDU(np.ones_like(image, dtype=">f4"), name="UNCERT"),
                         fits.ImageHDU(np.ones((5, 5), dtype=">f4"), name="PSFIMAGE")])
    out = io.BytesIO()
    hdus.writeto(out)
    return out.getvalue()


def rubin_alert(side: int = 30, *, flux: float = 5000.0, mjd: float = 61000.0, prv=(), seed: int = 0,
                first_seen: float | None = None) -> RubinAlert:
    rng = np.random.default_rng(seed)
    record = fake_sample(1101)
    source = {**record["diaSource"], "psfFlux": flux, "psfFluxErr": 100.0, "midpointMjdTai": mjd,
              "band": "r", "reliability": 0.9, "extendedness": 0.1, "snr": 50.0}
    dia_object = {**record["diaObject"], "firstDiaSourceMjdTai": first_seen}
    record.update(diaSource=source, prvDiaSources=list(prv), diaObject=dia_object, **{
        name: rubin_fits(rng.normal(size=(side, side)) + 5)
        for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference")})
    alert = rubin_alert_from_record(record, "test")
    assert isinstance(alert, RubinAlert)
    return alert


def earlier_source(alert: RubinAlert, number: int, mjd: float, flux: float, band: str = "r") -> dict:
    return {**alert.dia_source, "diaSourceId": number, "midpointMjdTai": mjd, "psfFlux": flux, "band": band}


@pytest.mark.parametrize("side", [20, 30, 31, 48, 61, 100])
def test_triplet_is_centred_unit_norm_and_finite_at_every_stamp_size(side):
    alert = rubin_alert(side)
    triplet = make_rubin_triplet(alert, 48)
    assert triplet.shape == (48, 48, 3) and triplet.dtype == np.float32 and np.isfinite(triplet).all()
    cropped, place = fit_stamp(np.zeros((side, side)), 48)
    for channel in range(3):
        inside = triplet[place[0], place[1], channel].astype(np.float64)
        assert np.linalg.norm(inside) == pytest.approx(1.0, rel=1e-5)
    # the stamp's central pixel stays the triplet's central pixel (crop or pad alike)
    image = np.zeros((side, side))
    image[side // 2, side // 2] = 1
    cropped, place = fit_stamp(image, 48)
    square = np.zeros((48, 48))
    square[place] = cropped
    assert square[24, 24] == 1


def test_missing_and_blank_cutouts_are_refused_by_name():
    bare = rubin_alert_from_record(fake_sample(1000), "fake")
    with pytest.raises(CutoutError, match="science cutout: cutout is missing"):
        make_rubin_triplet(bare)
    alert = rubin_alert()
    blank = dataclasses.replace(alert, cutouts={**alert.cutouts, "cutoutTemplate": rubin_fits(np.zeros((30, 30)))})
    with pytest.raises(CutoutError, match="reference cutout: cutout is all zero"):
        make_rubin_triplet(blank)


def test_history_features_are_causal_and_per_band():
    base = rubin_alert()
    prv = [earlier_source(base, 11, 60990.0, 20000.0, "g"), earlier_source(base, 12, 60995.0, 1000.0, "r")]
    alert = rubin_alert(prv=prv)
    later = {"candid": 99, "jd": alert.jd + 5, "magpsf": 10.0, "fid": 3}  # a future alert: never used
    values = rubin_named_features(alert, earlier=[later])
    mag_now = 31.4 - 2.5 * np.log10(5000.0)
    assert values["magpsf"] == pytest.approx(mag_now)
    assert values["ndet"] == 3 and values["ndet_band"] == 2
    assert values["age"] == pytest.approx(10.0)
    assert values["peakmag_so_far"] == pytest.approx(31.4 - 2.5 * np.log10(20000.0))  # the g point
    assert values["peakmag_so_far_band"] == pytest.approx(mag_now)  # brighter than the earlier r point
    assert values["days_since_peak"] == pytest.approx(10.0) and values["days_to_peak"] == pytest.approx(0.0)
    # the object's first detection as the packet states it (schema 8.0+) counts when earlier
    assert rubin_named_features(rubin_alert(prv=prv, first_seen=60980.0))["age"] == pytest.approx(20.0)
    assert compute_rubin_features(alert).shape == (len(RUBIN_FEATURE_SETS["rubin_v1"]),)


def test_unmeasured_extendedness_is_marked_but_a_missing_flux_is_refused():
    alert = rubin_alert()
    record_alert = rubin_alert_from_record({**fake_sample(1101), "diaSource": {
        **alert.dia_source, "extendedness": None}, **{k: v for k, v in alert.cutouts.items()}}, "x")
    assert rubin_named_features(record_alert)["extendedness"] == -1.0
    zero = rubin_alert(flux=0.0)
    with pytest.raises(FeatureError, match="missing feature magpsf"):
        compute_rubin_features(zero)


def test_crossmatch_feature_needs_a_catalogue_and_uses_the_nearest_source(tmp_path):
    alert = rubin_alert()
    ra, dec = alert.candidate["ra"], alert.candidate["dec"]
    with pytest.raises(FeatureError, match="star/galaxy catalogue"):
        compute_rubin_features(alert, "rubin_v1_sg")
    path = tmp_path / "sg.csv"
    path.write_text(f"ra,dec,sgscore\n{ra},{dec + 2 / 3600},0.9\n{ra},{dec + 4 / 3600},0.1\n{ra + 1},{dec},0.0\n")
    catalog = StarGalaxyCatalog.from_file(path, radius=5.0)
    values = rubin_named_features(alert, catalog=catalog, needed=RUBIN_FEATURE_SETS["rubin_v1_sg"])
    assert values["sgscore_xm"] == 0.9 and values["distsg_xm"] == pytest.approx(2.0, rel=1e-6)
    far = StarGalaxyCatalog(np.array([ra + 1]), np.array([dec]), np.array([0.0]), radius=5.0)
    assert far.nearest(ra, dec) == (0.5, 5.0)


def test_surveys_never_mix_in_either_direction(real_avro_dir):
    ztf = next(a for a in read_alerts(sorted(real_avro_dir.glob("*.avro"))[:3]) if isinstance(a, Alert))
    with pytest.raises(SurveyMismatchError, match="a ZTF alert cannot be scored by a model of RUBIN alerts"):
        preprocess_alert(ztf, "rubin_v1")
    with pytest.raises(SurveyMismatchError, match="a RUBIN alert cannot be scored by a model of ZTF alerts"):
        preprocess_alert(rubin_alert(), "v1")
    chunk = Pipeline("icml2023").prepare([rubin_alert(), ztf])
    assert len(chunk) == 1 and chunk.rejections[0].stage == "survey"


def test_every_real_rubin_alert_with_cutouts_becomes_model_inputs():
    directory = require_shared("data", "rubin-alerts")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".avro", ".parquet"))
    chunk = Pipeline("rubin_v1").prepare(read_alerts(files))
    assert len(chunk) >= 30
    assert all(r.stage == "read" and r.reason.startswith("solar-system") for r in chunk.rejections)
    assert chunk.triplet_array().shape == (len(chunk), 48, 48, 3) and np.isfinite(chunk.triplet_array()).all()
    assert np.isfinite(chunk.feature_array()).all()
    assert not any(isinstance(r, Rejection) and r.stage != "read" for r in chunk.rejections)


def test_history_features_from_columns_equal_those_from_the_views():
    """The columns path (``_detections_from_columns``) against the ZTF-named views, on histories
    with every case the views skip or keep: nulls, zero and non-finite fluxes, later sources,
    repeated ids (the alert's own among them), unknown and null bands, null reliabilities."""
    import random

    import fastavro

    from brightscan.alerts import decode_avro
    from brightscan.alerts.columns import MIN_COLUMNS, Columns
    from brightscan.alerts.rubin_wire import rubin_schema
    from tests.alerts.test_rubin import wire_message

    rng = random.Random(3)
    parsed, _ = rubin_schema(1101)
    checked = long_ones = 0
    for trial in range(60):
        record = fake_sample(1101)
        own_id, mjd_now = record["diaSource"]["diaSourceId"], 61000.0
        record["diaSource"] |= {"midpointMjdTai": mjd_now, "psfFlux": 3000.0, "snr": 30.0, "extendedness": 0.2,
                                "reliability": rng.choice([None, *[0.7] * 5]), "band": rng.choice([*"rrrrrr", "q", None])}
        template = record["diaSource"]
        record["prvDiaSources"] = [template | {
            "diaSourceId": rng.choice([own_id, *range(1, 12), rng.randrange(2 ** 40)]),
            "midpointMjdTai": mjd_now + rng.choice([-30.0, -5.5, -1.0, 0.0, 0.5, float("nan"), -rng.random() * 50]),
            "psfFlux": rng.choice([None, 0.0, float("nan"), float("inf"), -800.0, rng.uniform(10, 1e5)]),
            "band": rng.choice(["u", "g", "r", "i", "z", "y", "q", None]),
            "reliability": rng.choice([None, float("nan"), rng.random()]),
        } for _ in range(rng.randrange(0 if trial % 7 == 0 else 1, 60))]
        message = wire_message(record, 1101)
        (item,) = list(decode_avro(message, "m"))
        whole = rubin_alert_from_record(fastavro.schemaless_reader(io.BytesIO(message[5:]), parsed), "m")
        assert isinstance(item, RubinAlert) and isinstance(whole, RubinAlert)
        assert isinstance(item.prv_dia_sources, Columns) and not isinstance(whole.prv_dia_sources, Columns)
        long_ones += len(item.prv_dia_sources) >= MIN_COLUMNS  # computed from the columns

        def features(alert, needed=None):
            try:
                return rubin_named_features(alert, needed=needed)
            except FeatureError as exc:
                return str(exc)

        def history(alert):
            return features(alert, needed=("ndet",))
        assert repr(features(item)) == repr(features(whole))
        checked += isinstance(features(item), dict)
        # the history alone, even where the alert's own band or reliability is missing
        assert repr(history(item)) == repr(history(whole))
    assert checked > 30 and long_ones > 30
