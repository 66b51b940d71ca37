"""Small files that claim or inflate to gigabytes, built in a few seconds without ever holding
what they expand to: Avro blocks for every codec, records claiming 2^60 of nothing, gzip
cutouts, tar archives. Used by ``test_limits.py``, ``test_bombs.py`` and
``benchmarks/bench_bombs.py``.

Deflate and gzip bombs repeat one independently compressed segment (a full flush resets the
history, so segments can be concatenated); zstd, bzip2 and xz bombs repeat whole frames or
streams, which their decoders read one after another.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import struct
import tarfile
import zlib

try:
    from compression import zstd as _zstd  # Python 3.14
except ImportError:  # the backport, as brightscan uses before 3.14
    from backports import zstd as _zstd

MiB = 1 << 20
SYNC = b"0123456789abcdef"
_ZERO_CHUNK = bytes(MiB)


def zigzag(value: int) -> bytes:
    """Avro's ``long`` encoding (zig-zag varint) of a non-negative value."""
    return _uvarint(value << 1)


def container(schema: dict | str, codec: str, blocks: list[tuple[int, bytes]]) -> bytes:
    """An Avro object container written by hand: any count, any body, nothing checked."""
    text = (schema if isinstance(schema, str) else json.dumps(schema)).encode()
    meta = {"avro.schema": text, "avro.codec": codec.encode()}
    out = io.BytesIO()
    out.write(b"Obj\x01" + zigzag(len(meta)))
    for key, value in meta.items():
        out.write(zigzag(len(key)) + key.encode() + zigzag(len(value)) + value)
    out.write(zigzag(0) + SYNC)
    for count, body in blocks:
        out.write(zigzag(count) + zigzag(len(body)) + body + SYNC)
    return out.getvalue()


def _deflate_segment(data: bytes = _ZERO_CHUNK) -> bytes:
    # raw deflate of ``data`` ending in a full flush: independent of what comes before or after
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(zlib.Z_FULL_FLUSH)


def deflate_zeros(total: int) -> bytes:
    """Raw deflate (Avro's ``deflate`` codec) inflating to ``total`` zero bytes (a MiB multiple)."""
    return _deflate_segment() * (total // MiB) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def gzip_zeros(total: int) -> bytes:
    """A gzip member inflating to ``total`` zero bytes, with a true CRC32 and size trailer."""
    crc = 0
    for _ in range(total // MiB):
        crc = zlib.crc32(_ZERO_CHUNK, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + deflate_zeros(total) + struct.pack("<II", crc, total & 0xFFFFFFFF)


def zstd_zeros(total: int) -> bytes:
    """Zstandard frames (as Avro's ``zstandard`` codec stores them) giving ``total`` zero bytes."""
    frame = _zstd.compress(bytes(64 * MiB), level=3)
    return frame * (total // (64 * MiB))


def bzip2_zeros(total: int) -> bytes:
    """bzip2 streams giving ``total`` zero bytes (a multiple of 16 MiB)."""
    return bz2.compress(bytes(16 * MiB), 9) * (total // (16 * MiB))


def xz_zeros(total: int) -> bytes:
    """xz streams giving ``total`` zero bytes (a multiple of 16 MiB)."""
    return lzma.compress(bytes(16 * MiB)) * (total // (16 * MiB))


def snappy_claim(total: int) -> bytes:
    """A raw snappy body whose header claims ``total`` bytes (at most the format's 4 GiB - 1; the
    CRC32 cannot matter)."""
    return _uvarint(min(total, 0xFFFFFFFF)) + b"\x00" * 16 + b"\x00\x00\x00\x00"


def lz4_claim(total: int) -> bytes:
    """An lz4 body (fastavro's framing: the size, 4 bytes little-endian, then one LZ4 block) whose
    stated size is ``total`` (at most 4 GiB - 1)."""
    return struct.pack("<I", min(total, 0xFFFFFFFF)) + b"\x10\x00" + b"\x00" * 14


def _uvarint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += bytes([(value & 0x7F) | 0x80])
        value >>= 7
    return out + bytes([value])


CODEC_BOMBS = {"deflate": deflate_zeros, "zstandard": zstd_zeros, "bzip2": bzip2_zeros, "xz": xz_zeros,
               "snappy": snappy_claim, "lz4": lz4_claim}

#: A record of one null field: it takes no bytes, so any count of them fits in an empty block.
NULL_RECORD = {"type": "record", "name": "nothing", "fields": [{"name": "x", "type": "null"}]}
#: A record holding an array of nulls: the array's count costs a few bytes, its items none.
NULL_ARRAY = {"type": "record", "name": "nulls",
              "fields": [{"name": "items", "type": {"type": "array", "items": "null"}}]}


def _nested_arrays(depth: int) -> dict:
    kind: str | dict = "null"
    for _ in range(depth):
        kind = {"type": "array", "items": kind}
    return kind


#: NULL_ARRAY plus a field nested deeper than Python compiles (too many nested blocks): a valid
#: schema only fastavro's reader could read, and it would iterate the array's claim.
DEEP_NULL_ARRAY = {"type": "record", "name": "deep",
                   "fields": [{"name": "deep", "type": _nested_arrays(30)}, *NULL_ARRAY["fields"]]}


def deep_array_count_bomb(count: int = 2**60) -> bytes:
    """One record of :data:`DEEP_NULL_ARRAY`: an empty deep array, then ``count`` nulls claimed."""
    return container(DEEP_NULL_ARRAY, "null", [(1, zigzag(0) + zigzag(count) + zigzag(0))])


def record_count_bomb(count: int = 2**60) -> bytes:
    """The issue's 122-byte file: one block claiming ``count`` records of zero bytes."""
    return container(NULL_RECORD, "null", [(count, b"")])


def array_count_bomb(count: int = 2**60) -> bytes:
    """One record whose array claims ``count`` nulls in a few bytes."""
    return container(NULL_ARRAY, "null", [(1, zigzag(count) + zigzag(0))])


def tar_with_bomb(members: list[tuple[str, bytes]], bomb_name: str, bomb_size: int, *,
                  bomb_at: int = 1) -> bytes:
    """A ``.tar.gz`` of ``members`` with, at position ``bomb_at``, a member of ``bomb_size`` zero
    bytes (a MiB multiple): a few MB of gzip, never held whole here."""
    segments, crc, size = [], 0, 0

    def add(data: bytes) -> None:
        nonlocal crc, size
        segments.append(_deflate_segment(data))
        crc, size = zlib.crc32(data, crc), size + len(data)

    def add_member(name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        add(info.tobuf(format=tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512))

    for index, (name, data) in enumerate(members):
        if index == bomb_at:
            info = tarfile.TarInfo(bomb_name)
            info.size = bomb_size
            add(info.tobuf(format=tarfile.GNU_FORMAT))
            zero_segment = _deflate_segment()
            for _ in range(bomb_size // MiB):
                segments.append(zero_segment)
                crc, size = zlib.crc32(_ZERO_CHUNK, crc), size + MiB
        add_member(name, data)
    add(bytes(1024))  # end of archive
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return header + b"".join(segments) + tail + struct.pack("<II", crc, size & 0xFFFFFFFF)
