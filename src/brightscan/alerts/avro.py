"""Avro container files: one or many packets per file, any codec, writer schema authoritative.

Every ZTF file repeats the same ~25 kB writer schema, and parsing it (JSON + fastavro's schema
compilation) costs as much as a fifth of decoding the packet. We read the container framing
ourselves (magic, metadata, sync marker, then ``count, size, body, sync`` blocks, one block in
memory at a time), decompress each block body with its codec (:mod:`brightscan.alerts.codecs`:
null, deflate, snappy, zstandard, bzip2, xz, lz4) and keep, keyed by the schema's exact JSON text,
fastavro's parsed schema and a decoder compiled from it (:mod:`brightscan.alerts.avro_compiler`,
twice as fast as fastavro, same output). The embedded schema stays authoritative: a file with
another schema text (a Spark export, a broker's own schema) gets its own entry; nothing is read
through a reader schema. A record the compiled decoder cannot read goes to
``fastavro.schemaless_reader``, which decides and words the error. Codecs outside the
specification (fastavro's ``lz4`` aside, which :mod:`~brightscan.alerts.codecs` reads) and
writer schemas the compiled decoder cannot compile are refused with a rejection that says so:
fastavro's own reader bounds neither a block's decompressed size nor an array's item count.
``benchmarks/bench_preprocess.py`` measures the codecs.

Damage is contained (docs/ingest.md lists every case): a block whose body cannot be
decompressed, or fails its checksum, loses its own records only; a record that cannot be decoded
loses the rest of its block (nothing says where the next record starts) but not the next blocks;
broken framing (a bad length, a wrong sync marker, a truncated block) is skipped up to the next
sync marker. Each lost record becomes a :class:`Rejection` naming the file and record number.

Bounds (:class:`~brightscan.alerts.limits.ReadLimits`): a block whose stored body exceeds
``max_block_bytes``, or which claims more than ``max_block_records`` records, is skipped without
being read whole; a body is decompressed only up to ``max_block_bytes``; a block claiming more
records than its records take bytes, or an array claiming more items than bytes are left, is
refused at once, never iterated. Each becomes a rejection naming the limit.

A stream that starts with byte 0 instead of the container magic is one Kafka wire-format message
(Rubin's stream, as brokers save it): :mod:`brightscan.alerts.rubin_wire` decodes it.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import fastavro

from brightscan.alerts.avro_compiler import Decoder, ItemCountError, UnsupportedSchema, compile_reader
from brightscan.alerts.codecs import CODECS, CorruptBlock, decompress_block
from brightscan.alerts.limits import DEFAULT_LIMITS, ReadLimits
from brightscan.alerts.records import Alert, Rejection, alert_from_record
from brightscan.errors import LimitExceeded
from brightscan.alerts.rubin import RubinAlert, rubin_projection
from brightscan.alerts.rubin_wire import MAX_MESSAGE_BYTES, WIRE_MAGIC, decode_wire_message

#: Avro container files start with these four bytes.
AVRO_MAGIC = b"Obj\x01"
_SYNC_SIZE = 16
_CHUNK = 1 << 20
#: Writer schemas by their JSON text: fastavro's parsed schema and our compiled decoder (or None);
#: ZTF has a handful of schema versions.
_SCHEMA_CACHE: dict[tuple[bytes, int], tuple[dict[str, Any], Decoder | None]] = {}
_SCHEMA_CACHE_SIZE = 64
#: Lost records are reported one by one up to this many per damaged block, then as one range.
_MAX_ROWS_PER_LOSS = 10_000


class _CorruptData(ValueError):
    """The container framing is broken (bad varint, short read, wrong sync marker)."""


@dataclass(frozen=True)
class _Lost:
    """A block whose records cannot be read: how many (None when unknown) and why."""

    count: int | None
    reason: str


def read_avro_stream(stream: BinaryIO, source: str,
                     limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Alert | Rejection]:
    """Decode every packet of one Avro container, lazily.

    Parameters
    ----------
    stream : binary file object
        Positioned at the start of the container; seekable streams let a damaged block be
        skipped to the next sync marker.
    source : str
        Where the container came from; record ``i > 0`` is named ``source#i``.
    limits : ReadLimits, optional
        Bounds on block sizes and record counts (default :data:`~brightscan.alerts.limits.DEFAULT_LIMITS`).

    Yields
    ------
    Alert or Rejection
        A file that is not Avro, or whose header is unreadable, yields one file-level rejection;
        otherwise every readable record is yielded and every unreadable one rejected.
    """
    head = stream.read(4)
    if head[:1] == WIRE_MAGIC:  # one Kafka wire-format message (Rubin's stream), not a container
        yield read_wire_stream(head, stream, source, limits)
        return
    if head != AVRO_MAGIC:
        what = "file is empty" if not head else "not an Avro container file (bad magic bytes)"
        yield Rejection(None, None, source, "read", what)
        return
    try:
        metadata, sync = _read_header(stream, limits.max_block_bytes)
        codec = metadata.get("avro.codec", b"null").decode("ascii") or "null"
        schema = _writer_schema(metadata["avro.schema"], limits.max_array_items) if codec in CODECS else None
    except UnsupportedSchema as exc:  # valid, but only fastavro's unbounded reader could read it
        yield Rejection(None, None, source, "read", f"writer schema refused (max_block_records): {exc}")
        return
    except Exception as exc:  # broken framing, bad JSON, invalid schema: fastavro raises many types
        yield Rejection(None, None, source, "read", f"unreadable Avro header: {_describe(exc)}")
        return
    if schema is None:  # a codec we cannot decompress within max_block_bytes: never read
        yield Rejection(None, None, source, "read", f"Avro codec {codec!r} is not read: only "
                        f"{', '.join(CODECS)} are decompressed within max_block_bytes")
        return
    index = 0
    for block in _iter_blocks(stream, sync, codec, limits):
        if isinstance(block, _Lost):
            yield from _lost_records(source, index, block)
            index += block.count or 0
            continue
        count, body = block
        pos = 0
        for number in range(count):
            try:
                record, pos = _decode_record(body, pos, schema)
            except Exception as exc:  # noqa: BLE001 - corrupt record data: fastavro raises many types
                lost = _Lost(count - number, f"record {index} cannot be decoded ({_describe(exc)}); "
                                             f"the rest of its block cannot be located")
                yield from _lost_records(source, index, lost)
                index += lost.count
                break
            yield alert_from_record(record, record_source(source, index))
            index += 1


def read_wire_stream(head: bytes, stream: BinaryIO, source: str,
                     limits: ReadLimits = DEFAULT_LIMITS) -> Alert | RubinAlert | Rejection:
    """The rest of a stream that starts with the wire format's magic byte, decoded as one message."""
    data = head + stream.read(MAX_MESSAGE_BYTES + 1 - len(head))  # bounded: never the whole of a huge file
    return decode_wire_message(data, source, limits)


def record_source(source: str, index: int) -> str:
    """How record ``index`` of a container is named: the path for the first, ``path#i`` after."""
    return source if index == 0 else f"{source}#{index}"


def decode_avro(data: bytes, source: str = "<bytes>",
                limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Alert | Rejection]:
    """Decode an in-memory Avro container (a Kafka message value, a tar member)."""
    return read_avro_stream(io.BytesIO(data), source, limits)


def _lost_records(source: str, index: int, lost: _Lost) -> Iterator[Rejection]:
    # One rejection per lost record, so that counts stay true; a range when there are too many.
    if lost.count is None or lost.count > _MAX_ROWS_PER_LOSS:
        how_many = "an unknown number of" if lost.count is None else str(lost.count)
        yield Rejection(None, None, record_source(source, index), "read",
                        f"{how_many} record(s) from record {index} on unreadable: {lost.reason}")
        return
    span = f"record {index}" if lost.count == 1 else f"records {index}-{index + lost.count - 1}"
    for number in range(index, index + lost.count):
        yield Rejection(None, None, record_source(source, number), "read",
                        f"unreadable Avro block ({span}): {lost.reason}")


def _iter_blocks(stream: BinaryIO, sync: bytes, codec: str,
                 limits: ReadLimits) -> Iterator[tuple[int, bytes] | _Lost]:
    """Each block's record count and decompressed body, or a :class:`_Lost` for a damaged one."""
    seekable = stream.seekable()
    while True:
        start = stream.tell() if seekable else 0
        first = stream.read(1)
        if not first:
            return
        count = None
        try:
            count = _read_long(stream, first)
            size = _read_long(stream)
            if count < 0 or size < 0:
                raise _CorruptData(f"negative block count or size ({count}, {size})")
            over = _over_limits(count, size, limits)
            body = _read_exact(stream, size) if over is None else _skip(stream, size)
            if _read_exact(stream, _SYNC_SIZE) != sync:
                raise _CorruptData("sync marker mismatch")
        except _CorruptData as exc:
            resumed = _resync(stream, sync, start + 1) if seekable else None
            skipped = (resumed if resumed is not None else stream.tell() if seekable else 0) - start
            plausible = count if count is not None and 0 < count <= skipped else None
            where = ("resumed at the next sync marker" if resumed is not None
                     else "no later sync marker: the file ends here")
            yield _Lost(plausible, f"damaged block framing ({exc}); {where}")
            if resumed is None:
                return
            continue
        if over is not None:  # a well-framed block beyond a limit: skipped unread, its records lost
            yield _Lost(count if count <= limits.max_block_records else None, over)
            continue
        try:
            records = decompress_block(codec, body, limits.max_block_bytes)
        except (CorruptBlock, LimitExceeded) as exc:
            yield _Lost(count, str(exc))
            continue
        if count > len(records):  # 2^60 records of no bytes: refused at once, never iterated
            yield _Lost(count, f"block claims {count} records in {len(records)} bytes: more records than bytes")
            continue
        yield count, records


def _over_limits(count: int, size: int, limits: ReadLimits) -> str | None:
    """Why a block must be skipped unread (its stored size or claimed count), or None."""
    if size > limits.max_block_bytes:
        return f"block of {size} bytes is larger than allowed ({limits.describe('max_block_bytes')})"
    if count > limits.max_block_records:
        return f"block claims {count} records, more than allowed ({limits.describe('max_block_records')})"
    return None


def _skip(stream: BinaryIO, size: int) -> bytes:
    """Step over ``size`` bytes without holding them (a seek, or reads of bounded chunks)."""
    if stream.seekable():
        here = stream.tell()
        left = stream.seek(0, io.SEEK_END) - here
        if size > left:  # not a large block: a broken length (resynchronised by the caller)
            raise _CorruptData(f"truncated: {size} bytes expected, {left} left")
        stream.seek(here + size)
        return b""
    left = size
    while left:
        part = stream.read(min(left, _CHUNK))
        if not part:
            raise _CorruptData(f"truncated: {size} bytes expected, {size - left} left")
        left -= len(part)
    return b""


def _resync(stream: BinaryIO, sync: bytes, start: int) -> int | None:
    """Position the stream after the first sync marker at or after ``start``; None if none."""
    stream.seek(start)
    offset, tail = start, b""
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return None
        window = tail + chunk
        found = window.find(sync)
        if found >= 0:
            end = offset - len(tail) + found + _SYNC_SIZE
            stream.seek(end)
            return end
        offset += len(chunk)
        tail = window[-(_SYNC_SIZE - 1):]


def _decode_record(body: bytes, pos: int, schema: tuple[dict[str, Any], Decoder | None]) -> tuple[dict, int]:
    """One record at ``pos``: compiled decoder first; fastavro decides whenever that one fails."""
    parsed, decoder = schema
    if decoder is not None:
        try:
            return decoder(body, pos)
        except ItemCountError:
            raise  # a claim fastavro would iterate until memory runs out: never handed to it
        except (IndexError, ValueError, struct.error):
            pass  # malformed data: fastavro re-reads it and raises (or not) exactly as before
    block = io.BytesIO(body)
    block.seek(pos)
    record = fastavro.schemaless_reader(block, parsed)
    return record, block.tell()


def _writer_schema(text: bytes, max_items: int) -> tuple[dict[str, Any], Decoder | None]:
    cached = _SCHEMA_CACHE.get((text, max_items))
    if cached is None:
        raw = json.loads(text)
        parsed = fastavro.parse_schema(raw)  # validates the schema before we compile it
        try:
            decoder: Decoder | None = compile_reader(raw, rubin_projection(raw), max_items)
        except UnsupportedSchema as exc:  # fastavro would read its arrays and maps with no item bound
            raise UnsupportedSchema(f"the bounded decoder cannot compile it ({_describe(exc)}), and "
                                    "fastavro's reader would not bound array and map item counts") from None
        cached = (parsed, decoder)
        if len(_SCHEMA_CACHE) >= _SCHEMA_CACHE_SIZE:
            _SCHEMA_CACHE.clear()
        _SCHEMA_CACHE[(text, max_items)] = cached
    return cached


def count_avro_records(stream: BinaryIO, limits: ReadLimits = DEFAULT_LIMITS) -> int:
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
            count = _read_long(stream, first)
            total += count if 0 <= count <= limits.max_block_records else 1  # one rejection
            stream.seek(_read_long(stream) + _SYNC_SIZE, io.SEEK_CUR)
    except _CorruptData:
        return max(total, 1)


def _read_header(stream: BinaryIO, max_bytes: int = DEFAULT_LIMITS.max_block_bytes) -> tuple[dict[str, bytes], bytes]:
    """The metadata map (``avro.schema``, ``avro.codec``) and sync marker after the magic.

    A key or value longer than ``max_bytes`` (``max_block_bytes``) is refused before it is read.
    """
    metadata: dict[str, bytes] = {}
    while True:
        count = _read_long(stream)
        if count == 0:
            break
        if count < 0:  # a map block may carry its byte size after a negative count
            count = -count
            _read_long(stream)
        for _ in range(count):
            key = _read_exact(stream, _header_length(stream, max_bytes)).decode("utf-8")
            metadata[key] = _read_exact(stream, _header_length(stream, max_bytes))
    if "avro.schema" not in metadata:
        raise _CorruptData("header has no avro.schema")
    return metadata, _read_exact(stream, _SYNC_SIZE)


def _header_length(stream: BinaryIO, max_bytes: int) -> int:
    size = _read_long(stream)
    if size > max_bytes:
        raise _CorruptData(f"header entry of {size} bytes is larger than allowed (max_block_bytes={max_bytes})")
    return size


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
        raise _CorruptData(f"truncated: {size} bytes expected, {len(data)} left")
    return data


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."
