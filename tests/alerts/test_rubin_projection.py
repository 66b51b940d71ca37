"""Rubin reading decodes only what the preprocessing reads, and bounds every array in a message.

The projection (``alerts.rubin.RUBIN_PROJECTION``) must never change a feature: every real Rubin
packet in ``../shared`` gives the same history and the same features as a whole fastavro decode.
The regular-expression fast path (``alerts/avro_skip.py``) must give what the exact path gives,
including on records it cannot match (long strings, arrays inside), which fall back.
"""

from __future__ import annotations

import io
import random
import struct

import fastavro
import pytest

from brightscan.alerts import Rejection, decode_avro
from brightscan.alerts.avro_compiler import ItemCountError, compile_reader
from brightscan.alerts.columns import MIN_COLUMNS
from brightscan.alerts.limits import ReadLimits
from brightscan.alerts.rubin import HISTORY_FIELDS, HISTORY_VIEW, RubinAlert, rubin_alert_from_record, ztf_view
from brightscan.alerts.rubin_wire import decode_wire_message, rubin_schema
from brightscan.preprocess.rubin import rubin_named_features
from tests.alerts.test_rubin import fake_sample, wire_message
from tests.conftest import require_shared


def _same(a, b) -> bool:  # NaN-aware equality of decoded values
    return repr(a) == repr(b)


def _whole(data: bytes) -> list[dict]:
    """Every record of a Rubin file decoded whole by fastavro (container or wire message)."""
    if data[:4] == b"Obj\x01":
        return list(fastavro.reader(io.BytesIO(data)))
    (schema_id,) = struct.unpack_from(">i", data, 1)
    return [fastavro.schemaless_reader(io.BytesIO(data[5:]), rubin_schema(schema_id)[0])]


def test_real_rubin_packets_give_the_same_history_and_features_as_a_whole_decode():
    directory = require_shared("data/rubin-alerts")
    checked = 0
    for path in sorted(directory.glob("*.avro")):
        data = path.read_bytes()
        items = list(decode_avro(data, path.name))
        # long histories (the LSSTCam container's) are walked at once and read as numpy columns
        assert all(item.prv_dia_sources._rows is None for item in items
                   if isinstance(item, RubinAlert) and len(item.prv_dia_sources) >= MIN_COLUMNS)
        for item, record in zip(items, _whole(data), strict=True):
            whole = rubin_alert_from_record(record, path.name)
            assert type(item) is type(whole)
            if not isinstance(item, RubinAlert):
                assert item.reason == whole.reason
                continue
            assert len(item.prv_dia_sources) == len(record["prvDiaSources"] or ())
            assert all(set(p) == HISTORY_FIELDS for p in item.prv_dia_sources)
            assert _same([[p[k] for k in HISTORY_VIEW] for p in item.prv_candidates],
                         [[p[k] for k in HISTORY_VIEW] for p in whole.prv_candidates])
            assert _same(item.dia_source, whole.dia_source) and _same(item.dia_object, whole.dia_object)
            assert item.cutouts == whole.cutouts
            assert _same(rubin_named_features(item), rubin_named_features(whole))
            checked += 1
    assert checked >= 10  # the LSSTCam container's long histories among them


def test_history_fields_give_the_view_the_history_reads():
    source = fake_sample(1101)["diaSource"]
    whole, projected = ztf_view(source), ztf_view({name: source[name] for name in HISTORY_FIELDS})
    assert _same([projected[k] for k in HISTORY_VIEW], [whole[k] for k in HISTORY_VIEW])


_ITEM = {"type": "record", "name": "Item", "fields": [
    {"name": "id", "type": "long"},
    {"name": "flux", "type": ["null", "float"]},
    {"name": "flag", "type": ["boolean", "null"]},
    {"name": "band", "type": ["null", "string"]},
    {"name": "note", "type": "string"},
    {"name": "when", "type": "double"},
    {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 3}},
    {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}},
]}
_PACKET = {"type": "record", "name": "Packet", "fields": [
    {"name": "head", "type": "string"},
    {"name": "items", "type": ["null", {"type": "array", "items": _ITEM}]},
    {"name": "others", "type": {"type": "array", "items": "Item"}},
    {"name": "tail", "type": "long"},
]}


def _random_item(rng: random.Random) -> dict:
    return {
        "id": rng.randrange(-2**62, 2**62), "flux": rng.choice([None, rng.uniform(-1e6, 1e6)]),
        "flag": rng.choice([None, True, False]), "band": rng.choice([None, "r", "y" * rng.randrange(200)]),
        # a note longer than 63 bytes has no one-byte length: the exact path reads that record
        "note": "é" * rng.randrange(0, 80), "when": rng.uniform(6e4, 7e4), "tag": bytes(rng.randrange(256) for _ in range(3)),
        "inner": {"x": rng.randrange(-2**31, 2**31)},
    }


@pytest.mark.parametrize("keep", [frozenset({"id", "band", "inner"}), frozenset({"note"}), frozenset()])
def test_projected_records_equal_the_whole_decode_on_both_paths(keep):
    rng = random.Random(7)
    parsed = fastavro.parse_schema(_PACKET)
    decode = compile_reader(_PACKET, {"items": keep, "others": frozenset({"flux"})})
    for _ in range(30):
        record = {"head": "h", "items": rng.choice([None, [_random_item(rng) for _ in range(rng.randrange(6))]]),
                  "others": [_random_item(rng) for _ in range(rng.randrange(4))], "tail": rng.randrange(2**40)}
        body = io.BytesIO()
        fastavro.schemaless_writer(body, parsed, record)
        whole = fastavro.schemaless_reader(io.BytesIO(body.getvalue()), parsed)
        got, end = decode(body.getvalue(), 0)
        assert end == len(body.getvalue())
        assert got["head"] == whole["head"] and got["tail"] == whole["tail"]
        assert [item["flux"] for item in got["others"]] == [item["flux"] for item in whole["others"]]
        if not keep:  # walked over and left out
            assert "items" not in got
        elif whole["items"] is None:
            assert got["items"] is None
        else:
            assert got["items"] == [{k: v for k, v in item.items() if k in keep} for item in whole["items"]]


def test_a_truncated_projected_record_is_an_error_not_a_guess():
    parsed = fastavro.parse_schema(_PACKET)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, {"head": "h", "items": [_random_item(random.Random(1))],
                                              "others": [], "tail": 1})
    decode = compile_reader(_PACKET, {"items": frozenset({"id"})})
    with pytest.raises((IndexError, ValueError)):
        decode(body.getvalue()[:20], 0)


def test_an_array_of_zero_size_items_is_bounded_by_max_items():
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "array", "items": "null"}}]}
    # 50,000 nulls claimed with 60,000 bytes left: within the bytes, beyond the limit
    data = _zigzag(50_000) + b"\x00" * 60_000
    assert len(compile_reader(schema)(data, 0)[0]["a"]) == 50_000  # no limit: read
    with pytest.raises(ItemCountError, match="max_array_items=1000"):
        compile_reader(schema, max_items=1000)(data, 0)


def _zigzag(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def _bomb(claimed: int, padding: int) -> bytes:
    """A v11.1 wire message whose prvDiaSources claims ``claimed`` items, ``padding`` bytes after."""
    record = fake_sample(1101)
    record["prvDiaSources"] = None
    empty = wire_message(record, 1101)
    record["prvDiaSources"] = []
    with_array = wire_message(record, 1101)
    # null is union branch 0, the array branch 1: the messages differ from there on
    at = next(i for i, (a, b) in enumerate(zip(empty, with_array)) if a != b)
    assert with_array[at:at + 2] == b"\x02\x00"
    return with_array[:at] + b"\x02" + _zigzag(claimed) + b"\x00" * padding + with_array[at + 2:]


def test_a_wire_message_claiming_too_many_history_records_is_refused_naming_the_limit():
    bomb = _bomb(150_000, 200_000)  # 200 kB: far under the message limit
    item = decode_wire_message(bomb, "topic[0]@9")
    assert isinstance(item, Rejection)
    assert "max_array_items=100000" in item.reason and item.source == "topic[0]@9"
    # a stricter limit from the user's ReadLimits, through decode_avro as a Kafka feed calls it
    (item,) = list(decode_avro(_bomb(2_000, 3_000), "m", ReadLimits(max_array_items=1_000)))
    assert isinstance(item, Rejection) and "max_array_items=1000" in item.reason


def test_real_history_beyond_a_users_limit_is_refused_and_the_file_goes_on():
    path = require_shared("data/rubin-alerts") / "fink-client__part-2-918301.avro"
    items = list(decode_avro(path.read_bytes(), path.name, ReadLimits(max_array_items=300)))
    reasons = [item.reason for item in items if isinstance(item, Rejection)]
    assert len(items) == 7  # one per record: five with 303-391 earlier sources, two with none
    assert sum("max_array_items=300" in reason for reason in reasons) == 5
    assert sum("solar-system" in reason for reason in reasons) == 2


def test_the_test_records_have_a_fast_path():
    from brightscan.alerts.avro_skip import record_pattern

    assert record_pattern(_ITEM["fields"], [0], "", {}) is not None  # so both paths are compared above
