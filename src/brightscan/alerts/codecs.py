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
========== ==================================================================================

Any other codec name (``lz4`` is fastavro's own extension) is left to ``fastavro.reader``, which
reads it or says which library it lacks. A damaged body raises :class:`CorruptBlock`.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import sys
from collections.abc import Callable

import cramjam
from isal import isal_zlib

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

#: Snappy cannot expand data more than ~21-fold; a block claiming more is corrupt, and is refused
#: before anything is allocated.
_SNAPPY_MAX_RATIO = 32
_CRC = struct.Struct(">I")


class CorruptBlock(ValueError):
    """A block body cannot be decompressed, or fails its checksum."""


def _null(body: bytes) -> bytes:
    return body


def _deflate(body: bytes) -> bytes:
    try:
        return isal_zlib.decompress(body, wbits=-15)
    except isal_zlib.error as exc:
        raise CorruptBlock(f"bad deflate data ({exc})") from None


def _snappy(body: bytes) -> bytes:
    if len(body) < 4:
        raise CorruptBlock(f"snappy block of {len(body)} bytes has no room for its CRC32")
    data, (expected,) = memoryview(body)[:-4], _CRC.unpack_from(body, len(body) - 4)
    try:
        size = cramjam.snappy.decompress_raw_len(data)
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


def _zstandard(body: bytes) -> bytes:
    try:
        return zstd.decompress(body)
    except zstd.ZstdError as exc:
        raise CorruptBlock(f"bad zstandard data ({exc})") from None


def _bzip2(body: bytes) -> bytes:
    try:
        return bz2.decompress(body)
    except (OSError, ValueError) as exc:
        raise CorruptBlock(f"bad bzip2 data ({exc})") from None


def _xz(body: bytes) -> bytes:
    try:
        return lzma.decompress(body)
    except lzma.LZMAError as exc:
        raise CorruptBlock(f"bad xz data ({exc})") from None


#: Codec name (the container's ``avro.codec``) -> block decompressor.
CODECS: dict[str, Callable[[bytes], bytes]] = {
    "null": _null,
    "deflate": _deflate,
    "snappy": _snappy,
    "zstandard": _zstandard,
    "bzip2": _bzip2,
    "xz": _xz,
}


def decompress_block(codec: str, body: bytes) -> bytes:
    """The record bytes of one block.

    Raises
    ------
    KeyError
        For a codec outside :data:`CODECS`.
    CorruptBlock
        When the body is damaged.
    """
    return CODECS[codec](body)

