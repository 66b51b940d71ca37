"""Cutouts as ZTF ships them: a minimal FITS file (BITPIX -32, big-endian) compressed with gzip.

The FITS bytes are built directly (an astropy round trip per stamp would cost more than the whole
simulation of the stamp); the tests decode them with astropy. Compression uses ISA-L when
installed (several times faster than zlib), with a zero gzip timestamp so output is reproducible.
"""

from __future__ import annotations

import zlib

import numpy as np

try:  # ISA-L: same format as zlib, much faster at low levels (levels 0-3)
    from isal import isal_zlib as _zlib

    _MAX_LEVEL = 3
except ImportError:  # pragma: no cover - isal is a declared dependency
    _zlib = zlib
    _MAX_LEVEL = 9

BLOCK = 2880


def _card(key: str, value: str) -> bytes:
    return f"{key:<8}= {value:>20}".ljust(80).encode("ascii")


def fits_bytes(image: np.ndarray) -> bytes:
    """A single-HDU FITS file holding ``image`` as big-endian float32 (BUNIT DN)."""
    ny, nx = image.shape
    cards = [
        _card("SIMPLE", "T"), _card("BITPIX", "-32"), _card("NAXIS", "2"),
        _card("NAXIS1", str(nx)), _card("NAXIS2", str(ny)), "BUNIT   = 'DN      '".ljust(80).encode("ascii"),
        b"END".ljust(80),
    ]
    header = b"".join(cards)
    header += b" " * (-len(header) % BLOCK)
    data = np.ascontiguousarray(image, dtype=">f4").tobytes()
    return header + data + b"\0" * (-len(data) % BLOCK)


def gzip_bytes(data: bytes, level: int = 1) -> bytes:
    """gzip-compress ``data`` (mtime 0, so identical input gives identical output)."""
    compressor = _zlib.compressobj(min(level, _MAX_LEVEL), _zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def cutout_bytes(image: np.ndarray, level: int = 1) -> bytes:
    """gzipped FITS of one stamp."""
    return gzip_bytes(fits_bytes(image), level)
