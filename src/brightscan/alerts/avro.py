"""ZTF Avro container files: one or many packets per file, writer schema embedded and authoritative.

Every ZTF file repeats the same ~25 kB writer schema, and parsing it (JSON + fastavro's schema
compilation) costs as much as a fifth of decoding the packet. We read the container framing
ourselves (magic, metadata, sync marker, then ``count, size, body, sync`` blocks, one block in
memory at a time) and keep, keyed by the schema's exact JSON text, fastavro's parsed schema and a
decoder compiled from it (:mod:`brightscan.alerts.avro_compiler`, twice as fast as fastavro, same
output). The embedded schema stays authoritative: a file with another schema text gets its own
entry. A record the compiled decoder cannot read goes to ``fastavro.schemaless_reader``, which
decides and words the error. Codecs other than ``null`` and ``deflate`` go through
``fastavro.reader``. ``benchmarks/bench_preprocess.py`` measures the alternatives.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import fastavro

from brightscan.alerts.avro_compiler import Decoder, UnsupportedSchema, compile_reader
from brightscan.alerts.records import Alert, Rejection, alert_from_record

#: Avro container files start with these four bytes.
AVRO_MAGIC = b"Obj\x01"
_SYNC_SIZE = 16
_CHUNK = 1 << 20
#: Writer schemas by their JSON text: fastavro's parsed schema and our compiled decoder (or None);
#: ZTF has a handful of schema versions.
_SCHEMA_CACHE: dict[bytes, tuple[dict[str, Any], Decoder | None]] = {}
_SCHEMA_CACHE_SIZE = 64


class _CorruptData(ValueError):
    """The container framing is broken (bad varint, short read, wrong sync marker)."""


def read_avro_stream(stream: BinaryIO, source: str) -> Iterator[Alert | Rejection]:
    """Decode every packet of one Avro container, lazily.

    A file that is not Avro, or breaks mid-way, yields a :class:`Rejection` for what could not be
    read; packets decoded before the break are still yielded.
    """
    head = stream.read(4)
    if head != AVRO_MAGIC:
        what = "file is empty" if not head else "not an Avro container file (bad magic bytes)"
        yield Rejection(None, None, source, "read", what)
        return
    try:
        metadata, sync = _read_header(stream)
        codec = metadata.get("avro.codec", b"null").decode("ascii")
        schema = _writer_schema(metadata["avro.schema"]) if codec in ("null", "deflate") else None
    except Exception as exc:  # broken framing, bad JSON, invalid schema: fastavro raises many types
        yield Rejection(None, None, source, "read", f"unreadable Avro header: {_describe(exc)}")
        return
    if schema is None:  # a rarer codec (snappy, zstandard, ...): fastavro reads it all
        yield from _read_with_fastavro(stream, source)
        return
    index = 0
    for block in _iter_records(stream, sync, codec, schema):
        if isinstance(block, Exception):
            yield Rejection(None, None, f"{source}#{index}", "read",
                            f"corrupt Avro data after {index} record(s): {_describe(block)}")
            return
        yield alert_from_record(block, source if index == 0 else f"{source}#{index}")
        index += 1


def decode_avro(data: bytes, source: str = "<bytes>") -> Iterator[Alert | Rejection]:
    """Decode an in-memory Avro container (a Kafka message value, a tar member)."""
    return read_avro_stream(io.BytesIO(data), source)


def _iter_records(
    stream: BinaryIO, sync: bytes, codec: str, schema: tuple[dict[str, Any], Decoder | None]
) -> Iterator[dict | Exception]:
    # Records of every block in turn; a failure is yielded (not raised) and ends the iteration.
    while True:
        try:
            first = stream.read(1)
            if not first:
                return
            count = _read_long(stream, first)
            size = _read_long(stream)
            if count < 0 or size < 0:
                raise _CorruptData(f"negative block count or size ({count}, {size})")
            body = _read_exact(stream, size)
            if _read_exact(stream, _SYNC_SIZE) != sync:
                raise _CorruptData("sync marker mismatch")
            if codec == "deflate":
                body = zlib.decompress(body, -15)
        except Exception as exc:  # truncated block, bad varint, bad sync marker, bad deflate data
            yield exc
            return
        pos = 0
        for _ in range(count):
            try:
                record, pos = _decode_record(body, pos, schema)
            except Exception as exc:  # corrupt record data: fastavro raises many types
                yield exc
                return
            yield record


def _decode_record(body: bytes, pos: int, schema: tuple[dict[str, Any], Decoder | None]) -> tuple[dict, int]:
    """One record at ``pos``: compiled decoder first; fastavro decides whenever that one fails."""
    parsed, decoder = schema
    if decoder is not None:
        try:
            return decoder(body, pos)
        except (IndexError, ValueError, struct.error):
            pass  # malformed data: fastavro re-reads it and raises (or not) exactly as before
    block = io.BytesIO(body)
    block.seek(pos)
    record = fastavro.schemaless_reader(block, parsed)
    return record, block.tell()


def _writer_schema(text: bytes) -> tuple[dict[str, Any], Decoder | None]:
    cached = _SCHEMA_CACHE.get(text)
    if cached is None:
        raw = json.loads(text)
        parsed = fastavro.parse_schema(raw)  # validates the schema before we compile it
        try:
            decoder: Decoder | None = compile_reader(raw)
        except UnsupportedSchema:
            decoder = None  # fastavro reads every record of this schema
        cached = (parsed, decoder)
        if len(_SCHEMA_CACHE) >= _SCHEMA_CACHE_SIZE:
            _SCHEMA_CACHE.clear()
        _SCHEMA_CACHE[text] = cached
    return cached


def count_avro_records(stream: BinaryIO) -> int:
    """Number of packets in one Avro container, from the block headers alone (nothing decoded).

    Used for progress totals; a file that is not Avro or breaks counts as one item (the
    rejection that reading it will yield).
    """
    if stream.read(4) != AVRO_MAGIC:
        return 1
    total = 0
    try:
        _read_header(stream)
        while True:
            first = stream.read(1)
            if not first:
                return max(total, 1)
            total += _read_long(stream, first)
            stream.seek(_read_long(stream) + _SYNC_SIZE, io.SEEK_CUR)
    except _CorruptData:
        return max(total, 1)


def _read_header(stream: BinaryIO) -> tuple[dict[str, bytes], bytes]:
    """The metadata map (``avro.schema``, ``avro.codec``) and sync marker after the magic."""
    metadata: dict[str, bytes] = {}
    while True:
        count = _read_long(stream)
        if count == 0:
            break
        if count < 0:  # a map block may carry its byte size after a negative count
            count = -count
            _read_long(stream)
        for _ in range(count):
            key = _read_exact(stream, _read_long(stream)).decode("utf-8")
            metadata[key] = _read_exact(stream, _read_long(stream))
    if "avro.schema" not in metadata:
        raise _CorruptData("header has no avro.schema")
    return metadata, _read_exact(stream, _SYNC_SIZE)


def _read_long(stream: BinaryIO, first: bytes = b"") -> int:
    """A zig-zag varint, as Avro writes ``int`` and ``long``."""
    chunk = first or stream.read(1)
    if not chunk:
        raise _CorruptData("truncated varint")
    byte = chunk[0]
    value, shift = byte & 0x7F, 7
    while byte & 0x80:
        chunk = stream.read(1)
        if not chunk or shift > 63:
            raise _CorruptData("truncated or overlong varint")
        byte = chunk[0]
        value |= (byte & 0x7F) << shift
        shift += 7
    return (value >> 1) ^ -(value & 1)


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    # Large sizes are read in chunks: a corrupt length must not allocate gigabytes up front.
    if size < 0:
        raise _CorruptData(f"negative length {size}")
    if size <= _CHUNK:
        data = stream.read(size)
    else:
        parts, left = [], size
        while left:
            part = stream.read(min(left, _CHUNK))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        data = b"".join(parts)
    if len(data) != size:
        raise _CorruptData(f"expected {size} bytes, read {len(data)}")
    return data


def _read_with_fastavro(stream: BinaryIO, source: str) -> Iterator[Alert | Rejection]:
    # Rare codecs (snappy, zstandard, ...): let fastavro read the whole container.
    stream.seek(0)
    try:
        reader = fastavro.reader(stream)
    except Exception as exc:  # a missing codec library, a broken header
        yield Rejection(None, None, source, "read", f"unreadable Avro header: {_describe(exc)}")
        return
    index = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except Exception as exc:  # truncated block, bad sync marker, corrupt varint, ...
            yield Rejection(None, None, f"{source}#{index}", "read",
                            f"corrupt Avro data after {index} record(s): {_describe(exc)}")
            return
        yield alert_from_record(record, source if index == 0 else f"{source}#{index}")
        index += 1


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."
