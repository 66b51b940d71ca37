"""Layouts (``alerts/avro_shapes.py``): a record read at a learnt layout equals the exact decode.

Records whose union branches, varint lengths and string lengths vary from one to the next must
each be read as fastavro reads them, whether a learnt layout, the general expression or the exact
path reads it; more layouts than :data:`MAX_SHAPES`, and records no layout can take, must change
nothing but the speed.
"""

from __future__ import annotations

import io
import pickle
import random

import fastavro
import pytest

from brightscan.alerts import avro_shapes
from brightscan.alerts.avro_compiler import compile_reader
from brightscan.alerts.avro_shapes import RecordShapes
from brightscan.alerts.avro_skip import field_patterns
from brightscan.alerts.columns import MIN_COLUMNS, Columns, LayoutRows, layout_columns

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
        sources = None if got["sources"] is None else list(got["sources"])
        assert repr(sources) == repr(expected)  # repr: same types, NaN-aware


#: Only what numpy reads from the walked layouts (alerts/columns.py): every field varies its layout.
_NUMERIC = {"type": "record", "name": "Numeric", "fields": [
    {"name": "id", "type": ["long", "null"]},
    {"name": "visit", "type": "long"},
    {"name": "flux", "type": ["null", "float"]},
    {"name": "flag", "type": ["null", "boolean"]},
    {"name": "mjd", "type": ["double", "null"]},
    {"name": "band", "type": ["string", "null"]},
    {"name": "count", "type": "int"},
    {"name": "skipped", "type": ["null", "double", "string", "int"]},
]}


def _numeric(rng: random.Random, wide: bool = True) -> dict:
    """A record; not ``wide``: few enough layouts (at most 16), varints of at most 9 bytes."""
    def maybe(value):
        return None if rng.random() < 0.3 else value
    if wide:  # 10-byte varints, and more layouts than are learnt: read record by record, same values
        ids = [0, -1, 63, -64, -2 ** 63, 2 ** 63 - 1, rng.randrange(-2 ** 55, 2 ** 55)]
        return _numeric(rng, False) | {"id": maybe(rng.choice(ids)), "flag": maybe(rng.random() < 0.5),
                                       "mjd": maybe(rng.uniform(6e4, 7e4)),
                                       "visit": rng.randrange(2 ** rng.randrange(1, 63)),
                                       "skipped": rng.choice([None, 1.5, "x" * rng.randrange(9), rng.randrange(-999, 999)])}
    # 8 layouts: id null or of 9 bytes, flux and band null or not
    return {"id": maybe(rng.choice([2 ** 62 - 1, -2 ** 62, rng.randrange(2 ** 56, 2 ** 62)])),
            "visit": rng.randrange(2 ** 40, 2 ** 41),
            "flux": maybe(rng.choice([rng.uniform(-1e5, 1e5), float("nan"), float("inf"), 0.0, -0.0])),
            "flag": rng.random() < 0.5, "mjd": rng.uniform(6e4, 7e4),
            "band": maybe(rng.choice("ugrizy\x00\x7f")), "count": rng.randrange(2 ** 20, 2 ** 27),
            "skipped": rng.choice([None, 1.5])}


@pytest.mark.parametrize("wide", [False, True])
def test_history_columns_read_with_numpy_equal_the_whole_decode(wide):
    packet = {"type": "record", "name": "P", "fields": [
        {"name": "sources", "type": {"type": "array", "items": ["null", _NUMERIC]}},  # Spark's nullable items
        {"name": "tail", "type": "long"}]}
    parsed = fastavro.parse_schema(packet)
    keep = frozenset({"id", "visit", "flux", "flag", "mjd", "band", "count"})
    decode = compile_reader(packet, {"sources": keep})
    rng = random.Random(11)
    for _ in range(30):
        body = io.BytesIO()
        fastavro.schemaless_writer(body, parsed, {"sources": [_numeric(rng, wide) for _ in range(rng.randrange(60))],
                                                  "tail": 7})
        data = body.getvalue()
        whole = fastavro.schemaless_reader(io.BytesIO(data), parsed)
        got, end = decode(data, 0)
        assert end == len(data) and got["tail"] == 7
        columns = got["sources"]
        assert isinstance(columns, Columns)
        expected = [{k: v for k, v in source.items() if k in keep} for source in whole["sources"]]
        if len(expected) >= MIN_COLUMNS and not wide:
            assert columns._rows is None  # read by numpy, not record by record
            for name in keep:  # arrays and lists agree with each other and with fastavro
                values, nulls = columns.array(name)
                assert repr(columns.column(name)) == repr([source[name] for source in expected])
                assert nulls is None or list(nulls) == [source[name] is None for source in expected]
        assert repr(list(columns)) == repr(expected) and len(columns) == len(expected)
        assert repr(list(pickle.loads(pickle.dumps(columns)))) == repr(expected)
    # a null item: the dict reader's list, None included, for the caller to refuse
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, {"sources": [_numeric(rng), None], "tail": 1})
    got, _ = decode(body.getvalue(), 0)
    assert isinstance(got["sources"], list) and got["sources"][1] is None


@pytest.mark.parametrize("wide", [False, True])  # read by numpy, or record by record
def test_a_damaged_record_in_a_walked_array_is_an_error_not_a_guess(wide):
    packet = {"type": "record", "name": "P", "fields": [
        {"name": "sources", "type": {"type": "array", "items": _NUMERIC}}, {"name": "tail", "type": "long"}]}
    parsed = fastavro.parse_schema(packet)
    decode = compile_reader(packet, {"sources": frozenset({"id", "mjd", "band"})})
    rng = random.Random(5)
    sources = [_numeric(rng, wide) | {"band": "r", "skipped": None} for _ in range(40)]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, {"sources": sources, "tail": 3})
    data = body.getvalue()
    decode(data, 0)  # layouts learnt
    for cut in (len(data) // 3, len(data) // 2, len(data) - 2):
        with pytest.raises((IndexError, ValueError)):
            decode(data[:cut], 0)
    # a band byte that is not UTF-8 (0xff) at a learnt layout: refused (the caller then lets
    # fastavro decide, which refuses it too)
    at = data.index(b"\x00\x02r")  # band's union index 0, length 1, "r"
    damaged = data[:at + 2] + b"\xff" + data[at + 3:]
    with pytest.raises((IndexError, ValueError)):
        decode(damaged, 0)
    with pytest.raises(ValueError):
        fastavro.schemaless_reader(io.BytesIO(damaged), parsed)


def test_a_wrong_guess_of_the_walk_is_caught_by_its_check_and_read_carefully():
    fields = [{"name": "id", "type": "long"}, {"name": "visit", "type": "long"}, {"name": "flux", "type": "double"}]
    shapes = RecordShapes.build(fields, [0, 2], field_patterns(fields, "", {}))
    schema = {"type": "record", "name": "R", "fields": fields}

    def encode(records):
        out = io.BytesIO()
        for record in records:
            fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
        return out.getvalue()
    learnt = [{"id": 1, "visit": 5, "flux": 1.0}, {"id": 300, "visit": 5, "flux": 2.0}]  # id of 1 or 2 bytes
    walked = LayoutRows()
    assert shapes.read_array(encode(learnt), 0, 2, walked, None) == len(encode(learnt)) and len(shapes.layouts) == 2
    # 20 records the guessing tree (which looks at id's first byte only) takes for a learnt layout;
    # one has a visit of 3 bytes: a layout it has not seen, which only the check of the stretch catches
    records = [{"id": n % 2 * 300, "visit": 5 if n != 13 else 70_000, "flux": float(n)} for n in range(20)]
    data = encode(records)
    assert shapes._walk_known(data, 0, 20, LayoutRows()) == (0, 0)  # refused: nothing kept
    walked = LayoutRows()
    assert shapes.read_array(data, 0, 20, walked, None) == len(data) and len(shapes.layouts) == 3
    columns = layout_columns(("id", "flux"), walked)
    assert list(columns) == [{"id": r["id"], "flux": r["flux"]} for r in records]
    # now known: the same records are walked at once
    assert shapes._walk_known(data, 0, 20, LayoutRows()) == (len(data), 20)
