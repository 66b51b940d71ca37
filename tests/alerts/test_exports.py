"""Spark and broker Avro exports of real alerts: no top-level candid, broker columns, missing
prv_candidates or cutouts, several records per file, writer schemas no ZTF reader schema fits.
Each alert is read, or rejected alone with its file, record number and what is missing."""

from __future__ import annotations

import copy

import pyarrow.parquet as pq
import pytest

from alerts.samples import avro_bytes, spark_export
from brightscan.alerts import Alert, Rejection, read_alerts
from brightscan.preprocess import preprocess_alert
from brightscan.preprocess.batch import preprocess_to_dir


def original_alerts(schema, records) -> list[Alert]:
    return [a for a in read_alerts_bytes(avro_bytes(schema, records), "original.avro")]


def read_alerts_bytes(data: bytes, name: str):
    from brightscan.alerts import decode_avro

    return list(decode_avro(data, name))


def assert_same_model_inputs(alerts: list[Alert], expected: list[Alert]) -> None:
    """Bit-identical triplets and features (v1) for the same candids."""
    assert [a.candid for a in alerts] == [e.candid for e in expected]
    for alert, reference in zip(alerts, expected):
        triplet, features = preprocess_alert(alert, "v1", overflow="production")
        triplet_ref, features_ref = preprocess_alert(reference, "v1", overflow="production")
        assert triplet.tobytes() == triplet_ref.tobytes() and features.tobytes() == features_ref.tobytes()


@pytest.mark.parametrize("codec", ["snappy", "deflate"])
def test_spark_export_without_candid_reads_on_the_fast_path(tmp_path, night, codec, fast_path_only):
    schema, records = night
    spark_schema, rows = spark_export(schema, records)
    assert "candid" not in [f["name"] for f in spark_schema["fields"]]
    path = tmp_path / "part-00000-1b2c.c000.avro"
    path.write_bytes(avro_bytes(spark_schema, rows, codec=codec, sync_interval=200_000))
    alerts = list(read_alerts(path))
    assert all(isinstance(a, Alert) for a in alerts) and len(alerts) == len(records)
    assert [a.candid for a in alerts] == [r["candidate"]["candid"] for r in records]
    assert [a.source for a in alerts] == [str(path)] + [f"{path}#{i}" for i in range(1, len(records))]
    expected = original_alerts(schema, records)
    for alert, reference in zip(alerts, expected):
        assert alert.candidate == reference.candidate and alert.prv_candidates == reference.prv_candidates
        assert alert.cutouts == reference.cutouts
    assert_same_model_inputs(alerts, expected)


def test_missing_prv_candidates_and_cutouts(tmp_path, night):
    schema, records = night
    spark_schema, rows = spark_export(schema, records[:5], drop=("candid", "prv_candidates", "cutoutScience"))
    path = tmp_path / "thin.avro"
    path.write_bytes(avro_bytes(spark_schema, rows, codec="snappy"))
    alerts = list(read_alerts(path))
    assert all(isinstance(a, Alert) for a in alerts) and len(alerts) == 5
    assert all(a.prv_candidates == () and a.cutouts["cutoutScience"] is None for a in alerts)
    summary = preprocess_to_dir([path], tmp_path / "out")
    assert summary.accepted == 0
    rejected = pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()
    assert [r["source"] for r in rejected] == [str(path)] + [f"{path}#{i}" for i in range(1, 5)]
    assert {(r["stage"], r["reason"]) for r in rejected} == {("cutout", "science cutout: cutout is missing or empty")}
    assert [r["candid"] for r in rejected] == [r["candidate"]["candid"] for r in records[:5]]


def test_a_bad_record_loses_nothing_else_of_its_block(tmp_path, night, fast_path_only):
    schema, records = night
    spark_schema, rows = spark_export(schema, records[:6])
    for field in spark_schema["fields"]:
        if field["name"] in ("candidate", "objectId") and not isinstance(field["type"], list):
            field["type"] = [field["type"], "null"]
    rows[2]["candidate"] = None
    rows[4]["objectId"] = None
    path = tmp_path / "one-block.avro"
    path.write_bytes(avro_bytes(spark_schema, rows, codec="snappy", sync_interval=10_000_000))
    items = list(read_alerts(path))
    assert [type(i) for i in items] == [Alert, Alert, Rejection, Alert, Rejection, Alert]
    assert (items[2].source, items[2].reason) == (f"{path}#2", "packet has no candidate record")
    assert (items[4].source, items[4].reason) == (f"{path}#4", "packet has no objectId")
    assert items[4].candid == records[4]["candidate"]["candid"]


def test_writer_schemas_no_reader_schema_fits(night):
    """Promoted types, reordered fields, another namespace, candid as text: read by name."""
    schema, records = night
    odd = copy.deepcopy(schema)
    odd["namespace"] = "broker.export"
    fields = {f["name"]: f for f in odd["fields"]}
    fields["candid"]["type"] = "string"
    candidate = fields["candidate"]["type"]
    for field in candidate["fields"]:
        if field["type"] in ("float", ["null", "float"]):
            field["type"] = ["null", "double"]
        elif field["type"] in ("int", ["null", "int"]):
            field["type"] = ["null", "long"]
    candidate["fields"].reverse()
    odd["fields"] = [f for f in odd["fields"] if f["name"] != "candid"] + [fields["candid"]]
    rows = [{**r, "candid": str(r["candid"])} for r in records]
    alerts = read_alerts_bytes(avro_bytes(odd, rows, codec="zstandard"), "odd.avro")
    assert_same_model_inputs(alerts, original_alerts(schema, records))


@pytest.mark.parametrize(("candid", "reason"), [
    (1.2e18, "candid 1.2e+18 is not an integer"),
    ("ZTF123", "candid 'ZTF123' is not an integer"),
])
def test_a_candid_that_is_no_integer_is_named(night, candid, reason):
    schema, records = night
    odd = copy.deepcopy(schema)
    kind = "double" if isinstance(candid, float) else "string"
    next(f for f in odd["fields"] if f["name"] == "candid")["type"] = kind
    candidate = next(f for f in odd["fields"] if f["name"] == "candidate")["type"]
    candidate["fields"] = [f for f in candidate["fields"] if f["name"] != "candid"]
    record = copy.deepcopy(records[0])
    record["candid"] = candid
    (item,) = read_alerts_bytes(avro_bytes(odd, [record]), "x.avro")
    assert isinstance(item, Rejection) and item.reason == reason and item.source == "x.avro"


def test_float_candid_falls_back_to_the_candidate(night):
    schema, records = night
    odd = copy.deepcopy(schema)
    next(f for f in odd["fields"] if f["name"] == "candid")["type"] = "double"
    rows = [{**r, "candid": float(r["candid"])} for r in records[:3]]
    alerts = read_alerts_bytes(avro_bytes(odd, rows), "f.avro")
    assert [a.candid for a in alerts] == [r["candidate"]["candid"] for r in records[:3]]
    assert all(isinstance(a.candid, int) for a in alerts)
