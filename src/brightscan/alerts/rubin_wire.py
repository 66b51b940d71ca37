"""Rubin's Kafka wire format, with the schemas that ship with ``lsst-alert-packet``.

Each message on Rubin's alert stream (and each file a broker saves from it) is the Confluent
wire format: one magic byte ``0``, a big-endian int32 schema id (``major * 100 + minor``: 704 is
``lsst.v7_4``, 1000 is ``lsst.v10_0``), then one schemaless Avro record written with that schema.
The schema files are read from the installed ``lsst-alert-packet`` package (never copied here),
resolved with fastavro (each alert schema names its diaSource, diaObject... records in sibling
files) and compiled once per id by :mod:`brightscan.alerts.avro_compiler`, as container schemas are.

A message that is too short, has another magic byte, names a schema id the package does not ship,
cannot be decoded or leaves bytes unread becomes a :class:`~brightscan.alerts.records.Rejection`.
"""

from __future__ import annotations

import io
import re
import struct
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from brightscan.alerts.avro_compiler import Decoder, ItemCountError, UnsupportedSchema, compile_reader
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.alerts.records import Rejection
from brightscan.alerts.rubin import RubinAlert, rubin_alert_from_record, rubin_projection

__all__ = ["WIRE_MAGIC", "decode_wire_message", "known_schema_ids", "rubin_schema", "schema_path"]

#: First byte of a Confluent wire-format message.
WIRE_MAGIC = b"\x00"
_HEADER = 5
#: A message larger than this is refused before decoding (Rubin's are ~100 kB; Kafka's own
#: default limit is 1 MB, Rubin's brokers allow a few MB).
MAX_MESSAGE_BYTES = 64 << 20


def _schema_root() -> Path:
    from importlib.resources import files

    return Path(str(files("lsst.alert.packet") / "schema"))


def schema_path(schema_id: int) -> Path | None:
    """The ``lsst.vM_m.alert.avsc`` file of a wire schema id, or None when the package lacks it."""
    if not 0 < schema_id < 100_000:
        return None
    major, minor = divmod(schema_id, 100)
    path = _schema_root() / str(major) / str(minor) / f"lsst.v{major}_{minor}.alert.avsc"
    return path if path.is_file() else None


def known_schema_ids() -> list[int]:
    """Every schema id whose alert schema the installed ``lsst-alert-packet`` ships, ascending."""
    ids = []
    for path in _schema_root().glob("*/*/lsst.v*_*.alert.avsc"):
        major, minor = path.parent.parent.name, path.parent.name
        if major.isdigit() and minor.isdigit():
            ids.append(int(major) * 100 + int(minor))
    return sorted(ids)


@cache
def rubin_schema(schema_id: int, max_items: int = DEFAULT_LIMITS.max_array_items) -> tuple[dict[str, Any], Decoder | None]:
    """fastavro's parsed alert schema of an id, and our compiled decoder (None if not compilable).

    The decoder reads :func:`~brightscan.alerts.rubin.rubin_projection` of each packet, and
    refuses an array or map block of more than ``max_items`` items.

    Raises
    ------
    KeyError
        When ``lsst-alert-packet`` has no schema of that id.
    """
    path = schema_path(schema_id)
    if path is None:
        raise KeyError(schema_id)
    parsed = fastavro.schema.load_schema(str(path))
    expanded = fastavro.schema.expand_schema(parsed)
    try:
        decoder: Decoder | None = compile_reader(expanded, rubin_projection(expanded), max_items)
    except UnsupportedSchema:
        decoder = None
    return parsed, decoder


def decode_wire_message(data: bytes, source: str, limits: ReadLimits = DEFAULT_LIMITS) -> RubinAlert | Rejection:
    """Decode one wire-format message (header + schemaless Avro) into an alert or a rejection.

    Parameters
    ----------
    data : bytes
        The whole Kafka message value (or a file holding one).
    source : str
        Where it came from, for the rejection record.
    limits : ReadLimits, optional
        ``max_array_items`` bounds every array in the message; an array claiming more items, or
        more items than bytes are left, is refused before one item is read (a rejection naming
        the limit), and never handed to fastavro.
    """
    def reject(reason: str) -> Rejection:
        return Rejection(None, None, source, "read", reason)

    if len(data) > MAX_MESSAGE_BYTES:
        return reject(f"wire-format message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    if len(data) <= _HEADER or data[:1] != WIRE_MAGIC:
        return reject("not a wire-format message (needs magic byte 0, a 4-byte schema id and a body)")
    (schema_id,) = struct.unpack_from(">i", data, 1)
    try:
        parsed, decoder = rubin_schema(schema_id, limits.max_array_items)
    except KeyError:
        return reject(f"schema id {schema_id} is not a Rubin alert schema known to lsst-alert-packet "
                      f"(known: {', '.join(map(str, known_schema_ids()))})")
    try:
        record, end = _decode(data, parsed, decoder)
    except ItemCountError as exc:
        return reject(f"schema id {schema_id}: {exc}")
    except Exception as exc:  # noqa: BLE001 - corrupt data: fastavro raises many types; a rejection
        return reject(f"cannot decode body with schema id {schema_id}: {_describe(exc)}")
    if end != len(data):
        return reject(f"schema id {schema_id} decodes {end - _HEADER} of {len(data) - _HEADER} body "
                      "bytes: damaged message or wrong schema")
    return rubin_alert_from_record(record, source)


def _decode(data: bytes, parsed: dict[str, Any], decoder: Decoder | None) -> tuple[dict[str, Any], int]:
    if decoder is None:  # every shipped schema compiles; fastavro's reader has no item bound
        raise UnsupportedSchema("no compiled decoder for this schema: not read")
    try:
        return decoder(data, _HEADER)
    except (IndexError, ValueError, struct.error):
        pass  # fastavro decides and words the error (our decoder has checked every array's claim)
    stream = io.BytesIO(data)
    stream.seek(_HEADER)
    record = fastavro.schemaless_reader(stream, parsed)
    return record, stream.tell()


#: how an exception names the stream it read from (``<_io.BytesIO object at 0x7f...>``): noise in a reason
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _describe(exc: BaseException) -> str:
    text = _OBJECT_REPR.sub("the body", str(exc)) or type(exc).__name__
    if isinstance(exc, EOFError):
        text = f"the message ends inside the record, cut short? ({text})"
    return text if len(text) < 200 else text[:200] + "..."
