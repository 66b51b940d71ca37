"""Avro block codecs: the compressed body of one container block in, the plain record bytes out.

Every codec of the Avro specification is read here, so every container goes through the compiled
decoder (:mod:`brightscan.alerts.avro_compiler`) whatever its codec:

========== ==================================================================================
codec      block body
========== ==================================================================================
null       the records as they are
deflate    raw deflate (RFC 1951, no zlib header); inflated with ISA-L, as the cutouts are
snappy     raw snappy, then the CRC32 of the *uncompressed* records, 4 bytes big-endian;
           the checksum is verified (a mismatch rejects the block, never yields wrong records)
zstandard  one or more Zstandard frames (Java's writer omits the content size);
           ``compression.zstd`` (Python 3.14) or its backport, the module fastavro uses
bzip2, xz  the standard library's ``bz2`` / ``lzma``
lz4        fastavro's own extension (``lz4.block.compress``): the uncompressed size, 4 bytes
           little-endian, then one LZ4 block; the size is checked before anything is allocated
========== ==================================================================================

Any other codec name is refused (:func:`brightscan.alerts.avro.read_avro_stream` rejects the
file, naming the codecs it reads): no decompressor outside this table, whose output nothing
bounds, is ever handed a block. A damaged body raises :class:`CorruptBlock`; a body
that would decompress to more than the block limit raises
:class:`~brightscan.errors.LimitExceeded` as soon as the output passes it.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import sys
from collections.abc import Callable
from typing import Any

import cramjam
from isal import isal_zlib

from brightscan.alerts.limits import DEFAULT_LIMITS
from brightscan.errors import LimitExceeded

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

#: Snappy cannot expand data more than ~21-fold; a block claiming more is corrupt, and is refused
#: before anything is allocated.
_SNAPPY_MAX_RATIO = 32
_CRC = struct.Struct(">I")
#: LZ4 expands at most ~255-fold; a block claiming more is corrupt.
_LZ4_MAX_RATIO = 256


class CorruptBlock(ValueError):
    """A block body cannot be decompressed, or fails its checksum."""


def _too_large(max_bytes: int) -> LimitExceeded:
    return LimitExceeded(f"block decompresses to more than {max_bytes} bytes", f"max_block_bytes={max_bytes}")


def _null(body: bytes, max_bytes: int) -> bytes:
    if len(body) > max_bytes:
        raise _too_large(max_bytes)
    return body


def _deflate(body: bytes, max_bytes: int) -> bytes:
    # One bounded call: never more than max_bytes + 1 bytes out, however small the input
    inflater = isal_zlib.decompressobj(wbits=-15)
    try:
        plain = inflater.decompress(body, max_bytes + 1)
    except isal_zlib.error as exc:
        raise CorruptBlock(f"bad deflate data ({exc})") from None
    if len(plain) > max_bytes:
        raise _too_large(max_bytes)
    if not inflater.eof:
        raise CorruptBlock("bad deflate data (incomplete or truncated stream)")
    return plain


def _snappy(body: bytes, max_bytes: int) -> bytes:
    if len(body) < 4:
        raise CorruptBlock(f"snappy block of {len(body)} bytes has no room for its CRC32")
    data, (expected,) = memoryview(body)[:-4], _CRC.unpack_from(body, len(body) - 4)
    try:
        size = cramjam.snappy.decompress_raw_len(data)
        if size > max_bytes:  # the header says it: refused before anything is allocated
            raise _too_large(max_bytes)
        if size > _SNAPPY_MAX_RATIO * len(data) + 64:
            raise CorruptBlock(f"snappy block claims {size} bytes from {len(data)}")
        out = bytearray(size)  # decompressing into place is 5x faster than cramjam's Buffer -> bytes
        written = cramjam.snappy.decompress_raw_into(data, out)
    except cramjam.DecompressionError as exc:
        raise CorruptBlock(f"bad snappy data ({exc})") from None
    if written != size:
        raise CorruptBlock(f"snappy block gave {written} bytes, its header says {size}")
    plain = bytes(out)
    if isal_zlib.crc32(plain) != expected:
        raise CorruptBlock("snappy block fails its CRC32 check")
    return plain


def _lz4(body: bytes, max_bytes: int) -> bytes:
    if len(body) < 4:
        raise CorruptBlock(f"lz4 block of {len(body)} bytes has no room for its size")
    (size,) = struct.unpack_from("<I", body)
    if size > max_bytes:  # the stated size: refused before anything is allocated
        raise _too_large(max_bytes)
    if size > _LZ4_MAX_RATIO * (len(body) - 4) + 64:
        raise CorruptBlock(f"lz4 block claims {size} bytes from {len(body) - 4}")
    out = bytearray(size)
    try:
        written = cramjam.lz4.decompress_block_into(memoryview(body)[4:], out, output_len=size)
    except cramjam.DecompressionError as exc:
        raise CorruptBlock(f"bad lz4 data ({exc})") from None
    if written != size:
        raise CorruptBlock(f"lz4 block gave {written} bytes, its header says {size}")
    return bytes(out)


def _streams(body: bytes, max_bytes: int, new: Callable[[], Any], errors: tuple[type[BaseException], ...],
             name: str, *, trailing_ok: bool) -> bytes:
    """Concatenated streams (zstd frames, bzip2 / xz streams), one decompressor each, bounded.

    Each call asks for at most what is left of ``max_bytes`` plus one byte, so a bomb stops as soon
    as it passes the limit. ``trailing_ok``: data after the first stream that is not a stream is
    ignored (as ``bz2.decompress`` and ``lzma.decompress`` do); zstandard refuses it.
    """
    parts, total, data = [], 0, body
    while True:
        stream = new()
        try:
            piece = stream.decompress(data, max_bytes - total + 1)
        except errors as exc:
            if trailing_ok and parts:
                break
            raise CorruptBlock(f"bad {name} data ({exc})") from None
        total += len(piece)
        if total > max_bytes:
            raise _too_large(max_bytes)
        parts.append(piece)
        if not stream.eof:
            raise CorruptBlock(f"bad {name} data (compressed data ended before the end-of-stream marker)")
        data = stream.unused_data
        if not data:
            return b"".join(parts)
    return b"".join(parts)


def _zstandard(body: bytes, max_bytes: int) -> bytes:
    return _streams(body, max_bytes, zstd.ZstdDecompressor, (zstd.ZstdError,), "zstandard", trailing_ok=False)


def _bzip2(body: bytes, max_bytes: int) -> bytes:
    return _streams(body, max_bytes, bz2.BZ2Decompressor, (OSError, ValueError), "bzip2", trailing_ok=True)


def _xz(body: bytes, max_bytes: int) -> bytes:
    return _streams(body, max_bytes, lzma.LZMADecompressor, (lzma.LZMAError,), "xz", trailing_ok=True)


#: Codec name (the container's ``avro.codec``) -> block decompressor ``(body, max_bytes) -> records``.
CODECS: dict[str, Callable[[bytes, int], bytes]] = {
    "null": _null,
    "deflate": _deflate,
    "snappy": _snappy,
    "zstandard": _zstandard,
    "bzip2": _bzip2,
    "xz": _xz,
    "lz4": _lz4,
}


def decompress_block(codec: str, body: bytes, max_bytes: int = DEFAULT_LIMITS.max_block_bytes) -> bytes:
    """The record bytes of one block, never more than ``max_bytes`` of them.

    Every codec decompresses incrementally (or, for snappy, reads the size its header states)
    and stops as soon as the output passes ``max_bytes``: a small bomb never allocates more.

    Raises
    ------
    KeyError
        For a codec outside :data:`CODECS`.
    CorruptBlock
        When the body is damaged.
    LimitExceeded
        When the records would take more than ``max_bytes`` (``max_block_bytes``).
    """
    return CODECS[codec](body, max_bytes)
