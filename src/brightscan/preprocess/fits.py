"""Decoding of ZTF cutout stamps (gzipped single-HDU FITS) without astropy's general machinery.

ZTF stamps are tiny primary-HDU images: a few header cards, then big-endian pixels. Parsing the
cards ourselves and viewing the pixels with numpy costs microseconds; astropy stays the oracle in
the tests and the fallback for anything unusual (scaled integers, extensions, odd cards).
"""

from __future__ import annotations

import zlib

import numpy as np

from brightscan.alerts.limits import DEFAULT_LIMITS

try:  # ISA-L inflates about twice as fast as zlib
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - isal is a core dependency, but stay importable without it
    _inflate_lib = zlib  # type: ignore[assignment]

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 2880
_CARD = 80
_END_CARD = b"END" + b" " * 77
_BITPIX_DTYPES = {-32: ">f4", -64: ">f8", 8: "u1", 16: ">i2", 32: ">i4", 64: ">i8"}


class StampDecodeError(ValueError):
    """The bytes are not a decodable stamp; the message says why."""


def gunzip(data: bytes, max_bytes: int = DEFAULT_LIMITS.max_cutout_bytes) -> bytes:
    """Inflate gzip bytes, never more than ``max_bytes`` of them; raw (un-gzipped) FITS passes through.

    The output is bounded *while* inflating (one call asking for at most ``max_bytes + 1``
    bytes), so a few kB of gzip that would inflate to gigabytes stop at the limit; a raw stamp
    larger than the limit is refused too. Only the first gzip member is read, as before.

    Raises
    ------
    StampDecodeError
        When the data do not inflate (bad CRC, truncated) or exceed ``max_bytes`` (the reason
        names ``max_cutout_bytes``).
    """
    if data[:2] != _GZIP_MAGIC:
        if len(data) > max_bytes:
            raise StampDecodeError(f"cutout of {len(data)} bytes is larger than allowed (max_cutout_bytes={max_bytes})")
        return data
    inflater = _inflate_lib.decompressobj(wbits=31)  # wbits 31: gzip container, CRC checked at its end
    try:
        raw = inflater.decompress(data, max_bytes + 1)
    except Exception as exc:  # isal raises IsalError, zlib raises zlib.error
        raise StampDecodeError(f"undecodable gzip data ({exc})") from None
    if len(raw) > max_bytes:
        raise StampDecodeError(f"cutout inflates to more than {max_bytes} bytes (max_cutout_bytes={max_bytes})")
    if not inflater.eof:
        raise StampDecodeError("undecodable gzip data (incomplete or truncated stream)")
    return raw


def decode_fits_image(raw: bytes) -> np.ndarray:
    """Return the primary image of a FITS byte string as a 2-D array (FITS byte order kept).

    Raises
    ------
    StampDecodeError
        When the bytes are not a FITS file with a 2-D primary image.
    """
    if not raw.startswith(b"SIMPLE  ="):
        raise StampDecodeError("not a FITS file (no SIMPLE card)")
    layout = simple_image_layout(raw)
    if layout is not None:
        dtype, height, width, data_start = layout
        return np.frombuffer(raw, dtype=dtype, count=height * width, offset=data_start).reshape(height, width)
    header, data_start = _parse_header(raw)
    try:
        bitpix = int(header["BITPIX"])
        naxis = int(header["NAXIS"])
    except (KeyError, ValueError):
        raise StampDecodeError("FITS header lacks a valid BITPIX/NAXIS") from None
    if naxis != 2:
        raise StampDecodeError(f"FITS image has {naxis} axes, expected 2")
    try:
        width, height = int(header["NAXIS1"]), int(header["NAXIS2"])
    except (KeyError, ValueError):
        raise StampDecodeError("FITS header lacks valid NAXIS1/NAXIS2") from None
    dtype = _BITPIX_DTYPES.get(bitpix)
    if dtype is None:
        raise StampDecodeError(f"unsupported BITPIX {bitpix}")
    if width <= 0 or height <= 0:
        raise StampDecodeError(f"empty FITS image ({width}x{height})")
    count = width * height
    if data_start + count * np.dtype(dtype).itemsize > len(raw):
        raise StampDecodeError("FITS data are truncated")
    if any(key in header for key in ("BSCALE", "BZERO", "BLANK")):
        # scaled integers: astropy, only once the header is known to describe a sane, present image
        return _decode_with_astropy(raw)
    return np.frombuffer(raw, dtype=dtype, count=count, offset=data_start).reshape(height, width)


def simple_image_layout(raw: bytes) -> tuple[str, int, int, int] | None:
    """``(dtype, height, width, data offset)`` of a plain 2-D primary image, read cheaply.

    The FITS standard fixes the first cards of a primary header (SIMPLE, BITPIX, NAXIS, NAXIS1,
    NAXIS2), so a ZTF stamp is read from fixed offsets plus one search for the END card. Returns
    None for anything else (other axes, scaled integers, odd cards, truncated data): the general
    parser then decides, with the reason when it fails.
    """
    if (raw[80:90] != b"BITPIX  = " or raw[160:170] != b"NAXIS   = " or raw[240:250] != b"NAXIS1  = "
            or raw[320:330] != b"NAXIS2  = "):
        return None
    end = raw.find(_END_CARD)
    if (end < 0 or end % _CARD or raw.find(b"BSCALE", 0, end) >= 0 or raw.find(b"BZERO", 0, end) >= 0
            or raw.find(b"BLANK", 0, end) >= 0):
        return None
    try:  # fixed-format integers sit in columns 11-30; anything else goes to the general parser
        bitpix, naxis, width, height = [int(raw[i + 10 : i + 30]) for i in (80, 160, 240, 320)]
    except ValueError:
        return None
    dtype = _BITPIX_DTYPES.get(bitpix)
    if naxis != 2 or dtype is None or width <= 0 or height <= 0:
        return None
    data_start = -(-(end + _CARD) // _BLOCK) * _BLOCK
    if data_start + width * height * abs(bitpix) // 8 > len(raw):
        return None
    return dtype, height, width, data_start


def _parse_header(raw: bytes) -> tuple[dict[str, str], int]:
    header: dict[str, str] = {}
    for offset in range(0, len(raw) - _CARD + 1, _CARD):
        card = raw[offset : offset + _CARD]
        key = card[:8].rstrip()
        if key == b"END":
            end = offset + _CARD
            return header, -(-end // _BLOCK) * _BLOCK  # data start at the next 2880-byte block
        if card[8:10] == b"= ":
            value = card[10:].split(b"/", 1)[0].strip()
            header[key.decode("ascii", "replace")] = value.decode("ascii", "replace")
    raise StampDecodeError("FITS header has no END card")


def _decode_with_astropy(raw: bytes) -> np.ndarray:
    import io
    import warnings

    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(raw), ignore_missing_simple=True) as hdul:
                data = hdul[0].data
                if data is None or data.ndim != 2:
                    raise StampDecodeError("FITS primary HDU holds no 2-D image")
                return np.array(data)
    except StampDecodeError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, VerifyError, ...
        raise StampDecodeError(f"undecodable FITS ({exc})") from None
