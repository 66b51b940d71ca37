"""Layouts (``alerts/avro_shapes.py``): a record read at a learnt layout equals the exact decode.

Records whose union branches, varint lengths and string lengths vary from one to the next must
each be read as fastavro reads them, whether a learnt layout, the general expression or the exact
path reads it; more layouts than :data:`MAX_SHAPES`, and records no layout can take, must change
nothing but the speed.
"""

from __future__ import annotations

import io
import random

import fastavro
import pytest

from brightscan.alerts import avro_shapes
from brightscan.alerts.avro_compiler import compile_reader
from brightscan.alerts.avro_shapes import RecordShapes
from brightscan.alerts.avro_skip import field_patterns

_FLAT = {"type": "record", "name": "Source", "fields": [
    {"name": "id", "type": ["long", "null"]},
    {"name": "visit", "type": "long"},
    {"name": "flux", "type": ["float", "null"]},
    {"name": "flag", "type": ["null", "boolean"]},
    {"name": "mjd", "type": ["double", "null"]},
    {"name": "band", "type": ["string", "null"]},
    {"name": "raw", "type": ["null", "bytes"]},
    {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
    {"name": "skipped", "type": ["null", "double", "string", "int"]},
    {"name": "err", "type": "float"},
]}
_PACKET = {"type": "record", "name": "Packet", "fields": [
    {"name": "sources", "type": ["null", {"type": "array", "items": _FLAT}]},
    {"name": "walked", "type": {"type": "array", "items": "Source"}},
    {"name": "tail", "type": "long"},
]}
_KEEP = frozenset({"id", "flux", "flag", "mjd", "band", "raw", "tag", "err"})


def _source(rng: random.Random, variety: int) -> dict:
    """A record; ``variety`` widens the lengths drawn (more layouts)."""
    def maybe(value):
        return None if rng.random() < 0.3 else value
    return {
        "id": maybe(rng.randrange(-2 ** (7 * variety), 2 ** (7 * variety))), "visit": rng.randrange(2 ** 40),
        "flux": maybe(rng.uniform(-1e5, 1e5)), "flag": maybe(rng.random() < 0.5),
        "mjd": maybe(rng.uniform(6e4, 7e4)), "band": maybe("ugrizy"[rng.randrange(6)] * rng.randrange(variety)),
        # up to 80 bytes: longer than 63, the general expression (and so any layout) cannot take it
        "raw": maybe(bytes(rng.randrange(256) for _ in range(rng.randrange(80 if variety > 3 else 3)))),
        "tag": bytes([rng.randrange(256), rng.randrange(256)]),
        "skipped": rng.choice([None, 1.5, "x" * rng.randrange(variety), rng.randrange(-999, 999)]),
        "err": rng.uniform(0, 10),
    }


def _encode(record: dict) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(_PACKET), record)
    return body.getvalue()


@pytest.mark.parametrize("variety", [1, 2, 6])
def test_records_of_varying_layouts_read_as_fastavro_reads_them(variety):
    rng = random.Random(variety)
    decode = compile_reader(_PACKET, {"sources": _KEEP, "walked": frozenset()})
    for _ in range(40):  # one decoder: its layouts are learnt on the first packets, reused after
        record = {"sources": rng.choice([None, [_source(rng, variety) for _ in range(rng.randrange(30))]]),
                  "walked": [_source(rng, variety) for _ in range(rng.randrange(30))], "tail": rng.randrange(99)}
        data = _encode(record)
        whole = fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(_PACKET))
        got, end = decode(data, 0)
        assert end == len(data) and "walked" not in got and got["tail"] == whole["tail"]
        expected = None if whole["sources"] is None else [
            {k: v for k, v in source.items() if k in _KEEP} for source in whole["sources"]]
        assert repr(got["sources"]) == repr(expected)  # repr: same types, NaN-aware


def _shapes() -> RecordShapes:
    fields = _FLAT["fields"]
    kept = [i for i, field in enumerate(fields) if field["name"] in _KEEP]
    shapes = RecordShapes.build(fields, kept, field_patterns(fields, "", {"Tag": fields[7]["type"]}))
    assert shapes is not None
    return shapes


def _one(source: dict) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(_FLAT), source)
    return body.getvalue()


def test_a_learnt_layout_reads_only_records_of_that_layout():
    shapes = _shapes()
    rng = random.Random(3)
    base = _source(rng, 2) | {"id": 5, "band": "r", "raw": None, "skipped": None}
    first = _one(base)
    assert shapes.read(first, 0)[1] == len(first) and len(shapes.layouts) == 1
    # same layout, other values: read at the learnt layout, not learnt again
    again = _one(base | {"id": -7, "flux": 3.5, "band": "g"})
    got, end = shapes.read(again, 0)
    assert (got["id"], got["flux"], got["band"], end) == (-7, 3.5, "g", len(again)) and len(shapes.layouts) == 1
    # a varint one byte longer, a null branch, a longer string: each is another layout
    for change in ({"id": 500}, {"flux": None}, {"band": "rr"}):
        data = _one(base | change)
        got, end = shapes.read(data, 0)
        assert end == len(data) and all(got[k] == v for k, v in change.items())
    assert len(shapes.layouts) == 4
    # a record cut short at a learnt layout's size is not read at that layout
    assert shapes.read(first[:-1], 0) != (shapes.read(first, 0)[0], len(first))


def test_more_layouts_than_the_limit_fall_back_and_then_stop_being_tried(monkeypatch):
    monkeypatch.setattr(avro_shapes, "MAX_MISSES", 5)
    shapes = _shapes()
    rng = random.Random(4)
    records = [_one(_source(rng, 1) | {"id": 1 << (7 * n), "raw": None, "band": None, "skipped": None})
               for n in range(8)]  # ids of 1 to 8 varint bytes...
    records += [_one(_source(rng, 1) | {"id": 1 << (7 * n), "raw": None, "band": "r", "skipped": None})
                for n in range(8)]  # ...with a band or without: 16 layouts at most
    results = [shapes.read(data, 0) for data in records]
    assert len(shapes.layouts) <= avro_shapes.MAX_SHAPES
    assert all(result is None or result[1] == len(data) for result, data in zip(results, records))
    long_bytes = _one(_source(rng, 1) | {"raw": b"x" * 70})  # no expression: never a layout
    for _ in range(6):
        assert shapes.read(long_bytes, 0) is None
    assert shapes.layouts == () and shapes.read(records[0], 0) is None  # dropped: the general way only


def test_records_with_logical_types_get_no_layouts():
    fields = [{"name": "when", "type": {"type": "long", "logicalType": "timestamp-micros"}}]
    assert RecordShapes.build(fields, [0], field_patterns(fields, "", {})) is None


def test_a_varint_that_only_its_continuation_bit_tells_apart_is_not_misread():
    # layout learnt from a = 1 (0x02), b null (union index 1: 0x02). Then a = 128 is 0x80 0x02: its
    # first two bytes agree with that layout everywhere but the continuation bit of a's first byte.
    fields = [{"name": "a", "type": "long"}, {"name": "b", "type": ["long", "null"]}]
    shapes = RecordShapes.build(fields, [0, 1], field_patterns(fields, "", {}))
    assert shapes.read(b"\x02\x02", 0) == ({"a": 1, "b": None}, 2)
    assert shapes.read(b"\x80\x02\x02", 0) == ({"a": 128, "b": None}, 3)
    assert len(shapes.layouts) == 2
