"""The compiled Avro decoder reads exactly what fastavro reads: real packets, generated records,
mutated bytes; unsupported schemas fall back to fastavro."""

from __future__ import annotations

import datetime
import io
import json
import math
import struct

import fastavro
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.samples import avro_bytes, load_packet, real_avro_files
from brightscan.alerts import Alert, Rejection, decode_avro
from brightscan.alerts.avro_compiler import UnsupportedSchema, compile_reader


def same(a, b) -> bool:
    """Equal values, types and key order (NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def fastavro_read(schema: dict, body: bytes, pos: int = 0):
    stream = io.BytesIO(body)
    stream.seek(pos)
    record = fastavro.schemaless_reader(stream, fastavro.parse_schema(json.loads(json.dumps(schema))))
    return record, stream.tell()


def body_of(schema: dict, record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(json.dumps(schema))), record)
    return out.getvalue()


def assert_reads_like_fastavro(schema: dict, records: list[dict]) -> None:
    """The records written back to back decode, one after the other, exactly as fastavro reads them."""
    decode = compile_reader(schema)
    body = b"".join(body_of(schema, r) for r in records)
    pos = 0
    for _ in records:
        decoded, end = decode(body, pos)
        expected, expected_end = fastavro_read(schema, body, pos)
        assert same(decoded, expected) and end == expected_end
        pos = end
    assert pos == len(body)


@pytest.fixture
def real_bodies(real_avro_dir):
    out = []
    for path in real_avro_files(real_avro_dir):
        schema, (record,) = load_packet(path)
        out.append((schema, body_of(schema, record)))
    return out


def test_equal_to_fastavro_on_every_real_packet(real_bodies):
    for schema, body in real_bodies:
        decoded, end = compile_reader(schema)(body, 0)
        expected, expected_end = fastavro_read(schema, body)
        assert same(decoded, expected) and end == expected_end == len(body)


def test_mutated_real_packets_never_decode_differently(real_bodies):
    rng = np.random.default_rng(7)
    outcomes = {"both": 0, "fallback": 0, "failed": 0}
    decoders = [compile_reader(schema) for schema, _ in real_bodies]
    for i in range(300):
        schema, body = real_bodies[i % len(real_bodies)]
        data = bytearray(body)
        for pos in rng.integers(0, min(len(data), 6000), size=int(rng.integers(1, 5))):
            data[pos] = int(rng.integers(0, 256))
        if i % 5 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        try:
            decoded = decoders[i % len(real_bodies)](bytes(data), 0)
        except (IndexError, ValueError, struct.error):
            decoded = None
        try:
            expected = fastavro_read(schema, bytes(data))
        except Exception:  # noqa: BLE001 - any fastavro failure
            expected = None
        if decoded is None:
            outcomes["fallback" if expected is not None else "failed"] += 1
            continue
        assert expected is not None, "compiled decoder accepted bytes fastavro rejects"
        assert same(decoded[0], expected[0]) and decoded[1] == expected[1]
        outcomes["both"] += 1
    assert outcomes["both"] and outcomes["failed"]


NESTED_SCHEMA = {
    "type": "record", "name": "packet", "namespace": "test.ns",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "small", "type": "int"},
        {"name": "name", "type": "string"},
        {"name": "blob", "type": ["null", "bytes"]},
        {"name": "x", "type": ["float", "null"]},
        {"name": "y", "type": {"type": "double"}},
        {"name": "inner", "type": {"type": "record", "name": "inner", "fields": [
            {"name": "a", "type": ["null", "string", "long", "double"]},
            {"name": "b", "type": {"type": "array", "items": "float"}},
        ]}},
        {"name": "others", "type": [{"type": "array", "items": "test.ns.inner"}, "null"]},
        {"name": "again", "type": ["null", "inner"]},
    ],
}

floats32 = st.floats(width=32, allow_nan=False)
inner = st.fixed_dictionaries({
    "a": st.one_of(st.none(), st.text(max_size=5), st.integers(-2**63, 2**63 - 1), st.floats()),
    "b": st.lists(floats32, max_size=4),
})
packets = st.fixed_dictionaries({
    "id": st.integers(-2**63, 2**63 - 1), "small": st.integers(-2**31, 2**31 - 1),
    "name": st.text(max_size=20), "blob": st.one_of(st.none(), st.binary(max_size=300)),
    "x": st.one_of(st.none(), floats32), "y": st.floats(), "inner": inner,
    "others": st.one_of(st.none(), st.lists(inner, max_size=3)), "again": st.one_of(st.none(), inner),
})


@settings(max_examples=150, deadline=None)
@given(records=st.lists(packets, min_size=1, max_size=3))
def test_equal_to_fastavro_on_generated_records(records):
    assert_reads_like_fastavro(NESTED_SCHEMA, records)


#: The types Spark and brokers add around an alert: nullable unions with the type first, maps,
#: booleans, enums, fixed, and logical types (timestamps, decimals, dates, uuids).
EXPORT_SCHEMA = {
    "type": "record", "name": "topLevelRecord",
    "fields": [
        {"name": "flag", "type": ["boolean", "null"]},
        {"name": "band", "type": {"type": "enum", "name": "band", "symbols": ["g", "r", "i"]}},
        {"name": "again", "type": ["null", "band"]},
        {"name": "digest", "type": {"type": "fixed", "name": "md5", "size": 16}},
        {"name": "xmatch", "type": [{"type": "map", "values": ["string", "null"]}, "null"]},
        {"name": "t2", "type": {"type": "map", "values": {"type": "array", "items": "float"}}},
        {"name": "timestamp", "type": [{"type": "long", "logicalType": "timestamp-micros"}, "null"]},
        {"name": "millis", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "night", "type": {"type": "int", "logicalType": "date"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3}},
        {"name": "amount", "type": {"type": "fixed", "name": "dec8", "size": 8, "logicalType": "decimal",
                                    "precision": 12, "scale": 2}},
        {"name": "amounts", "type": {"type": "array", "items": "dec8"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "unknown", "type": {"type": "long", "logicalType": "made-up"}},
    ],
}

_moments = st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2100, 1, 1),
                        timezones=st.just(datetime.timezone.utc))
_decimals = st.decimals(min_value=-10**6, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)
exports = st.fixed_dictionaries({
    "flag": st.one_of(st.none(), st.booleans()), "band": st.sampled_from(["g", "r", "i"]),
    "again": st.one_of(st.none(), st.sampled_from(["g", "r", "i"])), "digest": st.binary(min_size=16, max_size=16),
    "xmatch": st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.text(max_size=8)),
                                                   max_size=4)),
    "t2": st.dictionaries(st.text(max_size=5), st.lists(floats32, max_size=3), max_size=3),
    "timestamp": st.one_of(st.none(), _moments), "millis": _moments, "night": st.dates(),
    "price": st.decimals(min_value=-10**5, max_value=10**5, places=3, allow_nan=False, allow_infinity=False),
    "amount": _decimals, "amounts": st.lists(_decimals, max_size=3), "id": st.uuids(),
    "unknown": st.integers(-2**63, 2**63 - 1),
})


@settings(max_examples=100, deadline=None)
@given(records=st.lists(exports, min_size=1, max_size=3))
def test_spark_and_broker_types_equal_fastavro(records):
    assert_reads_like_fastavro(EXPORT_SCHEMA, records)


@pytest.mark.parametrize(("data", "why"), [(b"\x01", "negative enum index"), (b"\x08", "out of range")])
def test_bad_enum_indexes_are_left_to_fastavro(data, why):
    schema = {"type": "record", "name": "r", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["a", "b"]}}]}
    with pytest.raises((ValueError, IndexError)):
        compile_reader(schema)(data, 0)


def test_unknown_names_are_unsupported():
    schema = {"type": "record", "name": "r", "fields": [{"name": "f", "type": ["null", "not.defined.Anywhere"]}]}
    with pytest.raises(UnsupportedSchema):
        compile_reader(schema)


def test_a_schema_we_cannot_compile_is_refused_naming_the_unbounded_counts(real_avro_dir):
    """fastavro's reader would read it, but with no bound on array and map item counts."""
    schema, (record,) = load_packet(real_avro_files(real_avro_dir)[0])
    kind = "long"
    for _ in range(30):  # deeper than the compiler can nest Python blocks
        kind = {"type": "array", "items": ["null", kind]}
    schema["fields"].append({"name": "deep", "type": kind, "default": []})
    with pytest.raises(UnsupportedSchema):
        compile_reader(schema)
    record = {**record, "deep": [[[None]]]}
    (rejection,) = list(decode_avro(avro_bytes(schema, [record]), "deep.avro"))
    assert isinstance(rejection, Rejection) and rejection.source == "deep.avro"
    assert rejection.reason.startswith("writer schema refused (max_block_records): the bounded decoder cannot "
                                       "compile it (cannot compile this schema (SyntaxError: too many statically")


def test_too_deeply_nested_schema_is_unsupported_not_a_crash():
    kind = "long"
    for _ in range(30):  # inline arrays of unions nest Python blocks beyond the compiler's limit
        kind = {"type": "array", "items": ["null", kind]}
    with pytest.raises(UnsupportedSchema, match="cannot compile"):
        compile_reader({"type": "record", "name": "r", "fields": [{"name": "f", "type": kind}]})
