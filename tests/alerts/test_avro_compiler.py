"""The compiled Avro decoder reads exactly what fastavro reads: real packets, generated records,
mutated bytes; unsupported schemas fall back to fastavro."""

from __future__ import annotations

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
from brightscan.alerts import Alert, decode_avro
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
    decode = compile_reader(NESTED_SCHEMA)
    body = b"".join(body_of(NESTED_SCHEMA, r) for r in records)
    pos = 0
    for _ in records:
        decoded, end = decode(body, pos)
        expected, expected_end = fastavro_read(NESTED_SCHEMA, body, pos)
        assert same(decoded, expected) and end == expected_end
        pos = end
    assert pos == len(body)


@pytest.mark.parametrize("field_type", [
    "boolean",
    {"type": "long", "logicalType": "timestamp-millis"},
    {"type": "enum", "name": "colour", "symbols": ["g", "r"]},
    {"type": "map", "values": "long"},
    {"type": "fixed", "name": "four", "size": 4},
    "not.defined.Anywhere",
])
def test_unsupported_types_raise(field_type):
    schema = {"type": "record", "name": "r", "fields": [{"name": "f", "type": ["null", field_type]}]}
    with pytest.raises(UnsupportedSchema):
        compile_reader(schema)


def test_a_schema_we_cannot_compile_still_reads_through_fastavro(real_avro_dir):
    schema, (record,) = load_packet(real_avro_files(real_avro_dir)[0])
    schema["fields"].append({"name": "flagged", "type": "boolean", "default": False})
    record = {**record, "flagged": True}
    (alert,) = list(decode_avro(avro_bytes(schema, [record])))
    assert isinstance(alert, Alert) and alert.candid == record["candid"]
    assert alert.candidate == record["candidate"]


def test_too_deeply_nested_schema_is_unsupported_not_a_crash():
    kind = "long"
    for _ in range(30):  # inline arrays of unions nest Python blocks beyond the compiler's limit
        kind = {"type": "array", "items": ["null", kind]}
    with pytest.raises(UnsupportedSchema, match="cannot compile"):
        compile_reader({"type": "record", "name": "r", "fields": [{"name": "f", "type": kind}]})
