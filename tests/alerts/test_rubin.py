"""Rubin alerts: every form (wire format, container, Parquet), every shipped schema, and refusals."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import fastavro
import pytest

from brightscan.alerts import Rejection, decode_avro, read_alerts
from brightscan.alerts.rubin import BANDS, RubinAlert, flux_to_mag, rubin_alert_from_record
from brightscan.alerts.rubin_wire import decode_wire_message, known_schema_ids, rubin_schema, schema_path
from brightscan.autoscan.write.feeds import delivery_from_messages
from tests.conftest import require_shared

#: The schema versions the issue asks for (7.x to 11.x); older ones ship too and are not promised.
SUPPORTED_IDS = [i for i in known_schema_ids() if i >= 700]


def fake_sample(schema_id: int) -> dict:
    """The fake alert shipped with lsst-alert-packet for one schema version."""
    path = schema_path(schema_id).parent / "sample_data" / "fakeAlert.avro"
    with open(path, "rb") as stream:
        (record,) = list(fastavro.reader(stream))
    return record


def wire_message(record: dict, schema_id: int) -> bytes:
    parsed, _ = rubin_schema(schema_id)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, record)
    return b"\x00" + struct.pack(">i", schema_id) + body.getvalue()


def test_shipped_schemas_cover_7_to_11():
    majors = {i // 100 for i in SUPPORTED_IDS}
    assert {7, 8, 9, 10, 11} <= majors


@pytest.mark.parametrize("schema_id", SUPPORTED_IDS)
def test_every_fake_sample_reads_as_container_and_as_wire_message(schema_id, tmp_path):
    sample = schema_path(schema_id).parent / "sample_data" / "fakeAlert.avro"
    (from_file,) = list(read_alerts(sample))
    assert isinstance(from_file, RubinAlert), getattr(from_file, "reason", None)
    record = fake_sample(schema_id)
    (from_wire,) = list(decode_avro(wire_message(record, schema_id), "msg"))
    assert isinstance(from_wire, RubinAlert)
    # the top-level diaSourceId (v8+) names the alert; v7 has only the diaSource's own
    assert from_wire.candid == from_file.candid == (record.get("diaSourceId") or record["diaSource"]["diaSourceId"])
    expected_object = record["diaSource"]["diaObjectId"] or record["diaObject"]["diaObjectId"]
    assert from_wire.object_id == str(expected_object)
    assert from_wire.jd == pytest.approx(record["diaSource"]["midpointMjdTai"] + 2400000.5)
    # the fake samples carry no cutouts: read, then refused by the cutout stage
    assert all(v is None for v in from_wire.cutouts.values())


def test_wire_schema_id_chooses_the_schema():
    # a v11.1 body read as v7.4 cannot decode cleanly: refused, never misread
    message = wire_message(fake_sample(1101), 1101)
    wrong = message[:1] + struct.pack(">i", 704) + message[5:]
    (item,) = list(decode_avro(wrong, "msg"))
    assert isinstance(item, Rejection) and "schema id 704" in item.reason


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda m: m[:1] + struct.pack(">i", 9999) + m[5:], "schema id 9999 is not a Rubin alert schema"),
    (lambda m: m[: len(m) // 2], "cannot decode body"),
    (lambda m: m + b"\x00\x01", "decodes"),
    (lambda m: m[:5], "not a wire-format message"),
])
def test_damaged_wire_messages_become_rejections(mutate, words):
    item = decode_wire_message(mutate(wire_message(fake_sample(1000), 1000)), "topic[0]@5")
    assert isinstance(item, Rejection) and words in item.reason and item.source == "topic[0]@5"


def test_solar_system_and_objectless_alerts_are_refused_and_the_batch_goes_on(tmp_path):
    parsed, _ = rubin_schema(1101)
    good = fake_sample(1101)
    moving = {**good, "diaSourceId": 2, "diaSource": {**good["diaSource"], "diaSourceId": 2, "ssObjectId": 77},
              "diaObject": None}
    orphan = {**good, "diaSourceId": 3, "diaSource": {**good["diaSource"], "diaSourceId": 3, "diaObjectId": None},
              "diaObject": None}
    path = tmp_path / "night.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, parsed, [moving, good, orphan])
    items = list(read_alerts(path))
    assert [type(i).__name__ for i in items] == ["Rejection", "RubinAlert", "Rejection"]
    assert "solar-system alert (ssObjectId 77)" in items[0].reason and items[0].candid == 2
    assert "no diaObject" in items[2].reason and items[2].source.endswith("#2")


def test_record_without_dia_source_is_refused():
    item = rubin_alert_from_record({"diaSource": None, "diaSourceId": 5}, "x")
    assert isinstance(item, Rejection) and "no diaSource" in item.reason


def test_magnitudes_from_njy_and_the_ztf_view():
    mag, err = flux_to_mag(1e4, 1e3)  # mag = 31.4 - 2.5 log10(nJy), the and Rubin's convention
    assert mag == pytest.approx(21.4, abs=1e-12) and err == pytest.approx(2.5 / 2.302585093 * 0.1, rel=1e-6)
    assert flux_to_mag(0.0) == (None, None) and flux_to_mag(float("nan")) == (None, None)
    record = fake_sample(1000)
    record["diaSource"] = {**record["diaSource"], "psfFlux": -1000.0, "band": "y"}
    alert = rubin_alert_from_record(record, "x")
    assert alert.candidate["magpsf"] == pytest.approx(31.4 - 7.5) and alert.candidate["isdiffpos"] == "f"
    assert alert.candidate["fid"] == BANDS.index("y") + 1 == 6


def _shared_rubin_files() -> list[Path]:
    directory = require_shared("data", "rubin-alerts")
    return sorted(p for p in directory.iterdir() if p.suffix in (".avro", ".parquet"))


def test_every_shared_rubin_sample_reads():
    for path in _shared_rubin_files():
        items = list(read_alerts(path))
        assert items, path
        for item in items:
            if isinstance(item, Rejection):
                # real samples are refused only for being solar-system detections
                assert item.reason.startswith("solar-system alert (ssObjectId"), (path, item.reason)
            else:
                assert isinstance(item, RubinAlert) and item.candid > 0 and item.object_id.isdigit()
                assert all(item.cutouts[name] for name in item.cutouts), path
                assert item.candidate["band"] in BANDS


def test_rubin_kafka_messages_decode_through_the_feed():
    directory = require_shared("data", "rubin-alerts")
    messages = [p.read_bytes() for p in sorted(directory.glob("*.avro")) if p.read_bytes()[:1] == b"\x00"]
    assert messages, "the shared samples include wire-format messages"

    class Message:  # what confluent_kafka.Message offers a consumer (tests/autoscan/test_feeds.py)
        def __init__(self, value, offset):
            self._value, self._offset = value, offset

        def value(self):
            return self._value

        def error(self):
            return None

        def topic(self):
            return "lsst-alerts-v11"

        def partition(self):
            return 0

        def offset(self):
            return self._offset

    batch = delivery_from_messages([Message(m, i) for i, m in enumerate(messages)], arrived_at=1.0)
    assert len(batch.items) == len(messages) and all(isinstance(i, RubinAlert) for i in batch.items)
    assert batch.items[0].source == "kafka:lsst-alerts-v11[0]@0"
