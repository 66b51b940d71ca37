"""Golden tests over the real alerts in ../shared: every alert accounted for, triplets equal to the
production (astropy, float32) computation, the published example triplets left unchanged."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from alerts.samples import CUTOUTS, production_stamp, production_triplet
from brightscan.alerts import Alert, read_alerts
from brightscan.errors import AlertError, CutoutError
from brightscan.preprocess import PAD_VALUE, make_triplet, preprocess_alert
from brightscan.preprocess.cutouts import normalize_stamp


def _read_all(paths) -> list:
    return list(read_alerts(paths))


@pytest.fixture
def avro_alerts(real_avro_dir) -> list:
    return _read_all([real_avro_dir])


@pytest.fixture
def parquet_alerts(real_parquet_dir) -> list:
    return _read_all([real_parquet_dir])


def test_every_real_avro_alert_is_read(real_avro_dir, avro_alerts):
    files = sorted(real_avro_dir.glob("*.avro"))
    assert len(files) == 38
    assert all(isinstance(item, Alert) for item in avro_alerts)
    assert [item.source for item in avro_alerts] == [str(f) for f in files]
    assert {item.schemavsn for item in avro_alerts} == {"3.2", "3.3", "4.01"}


def test_every_real_parquet_alert_is_read(real_parquet_dir, parquet_alerts):
    n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(real_parquet_dir.glob("*.parquet")))
    assert len(parquet_alerts) == n_rows > 200
    assert all(isinstance(item, Alert) for item in parquet_alerts)
    assert len({item.source for item in parquet_alerts}) == n_rows  # file#row, one per row


@pytest.mark.parametrize("kind", ["avro", "parquet"])
def test_real_alerts_accepted_or_rejected_with_reason_and_equal_to_production(kind, request):
    alerts = request.getfixturevalue(f"{kind}_alerts")
    accepted = 0
    for alert in alerts:
        oracle = production_triplet(alert.cutouts)
        try:
            triplet, features = preprocess_alert(alert, "v1")
        except AlertError as exc:
            # The only acceptable reason on real data: overflow sentinels, which production turns
            # into a channel of zeros (its float32 norm overflows).
            assert isinstance(exc, CutoutError) and "overflow sentinel" in exc.reason, exc
            channel = ("science", "reference", "difference").index(exc.reason.split()[0])
            region = _unpadded(alert, channel)
            assert not np.any(oracle[region + (channel,)]), "production did not zero this channel"
            continue
        accepted += 1
        assert triplet.shape == (63, 63, 3) and triplet.dtype == np.float32
        assert np.all(np.isfinite(features)) and features.dtype == np.float32
        np.testing.assert_allclose(triplet, oracle, rtol=0, atol=1e-6)
    assert accepted >= len(alerts) - 5


@pytest.mark.parametrize("kind", ["avro", "parquet"])
def test_production_overflow_mode_equals_oracle_where_finite(kind, request):
    alerts = request.getfixturevalue(f"{kind}_alerts")
    for alert in alerts:
        oracle = production_triplet(alert.cutouts)
        triplet = make_triplet(alert, overflow="production")
        finite = np.isfinite(oracle)
        np.testing.assert_allclose(triplet[finite], oracle[finite], rtol=0, atol=1e-6)
        assert np.all(np.isfinite(triplet))


def test_rejected_real_alerts_exist_and_carry_identity(parquet_alerts):
    # Real templates hold overflow sentinels; the default mode must reject them with identity.
    rejected = []
    for alert in parquet_alerts:
        try:
            make_triplet(alert)
        except CutoutError as exc:
            rejected.append(exc)
    assert rejected, "expected some real templates with float32 overflow sentinels"
    for exc in rejected:
        assert exc.candid is not None and exc.object_id
        assert exc.reason.startswith("reference cutout:")


def test_example_triplets_are_already_normalised(btsbot_example_dir):
    """The 39 given triplets (production output) are unchanged by our normalisation."""
    triplets = np.load(btsbot_example_dir / "usage_triplets.npy")
    assert triplets.shape == (39, 63, 63, 3)
    for triplet in triplets:
        for channel in range(3):
            image = triplet[:, :, channel]
            rows = ~np.all(image == np.float32(PAD_VALUE), axis=1)
            cols = ~np.all(image == np.float32(PAD_VALUE), axis=0)
            stamp = np.ascontiguousarray(image[np.ix_(rows, cols)], dtype=np.float32)
            again = normalize_stamp(stamp.copy())
            np.testing.assert_allclose(again, stamp, rtol=0, atol=1e-6)
            assert abs(np.linalg.norm(stamp.astype(np.float64)) - 1.0) < 1e-6


def test_oracle_stamp_helper_matches_channel_order(avro_alerts):
    # Guards the oracle itself: channel 1 of our triplet is the template cutout.
    alert = avro_alerts[0]
    triplet = make_triplet(alert)
    np.testing.assert_allclose(triplet[:, :, 1], production_stamp(alert.cutouts[CUTOUTS[1]]), atol=1e-6)


def _unpadded(alert: Alert, channel: int) -> tuple[slice, slice]:
    image = production_stamp(alert.cutouts[CUTOUTS[channel]])
    rows = ~np.all(image == 1e-9, axis=1)
    cols = ~np.all(image == 1e-9, axis=0)
    return slice(0, int(rows.sum())), slice(0, int(cols.sum()))
