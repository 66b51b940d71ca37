"""Cutout stamps → the model's 63x63x3 image triplet, exactly as production computes it.

Production (the BTSbot/Kowalski code) does, per cutout: gunzip → FITS → ``np.nan_to_num`` →
divide by ``np.linalg.norm`` (float32 arithmetic, as the stamps are big-endian float32) → pad
bottom/right to 63x63 with 1e-9 → stack [science, reference, difference]. We do the same, but
reject what production would silently turn into garbage: undecodable bytes, oversize stamps,
all-zero or non-finite images (checked *before* dividing), and float32 overflow sentinels
(|v| >= 1e38, which make production's float32 norm overflow and zero the whole channel).
"""

from __future__ import annotations

import math

import numpy as np

from brightscan.alerts.records import CUTOUT_FIELDS, Alert
from brightscan.errors import CutoutError
from brightscan.preprocess.fits import StampDecodeError, decode_fits_image, gunzip

#: Channel names in model order; ``CUTOUT_FIELDS`` holds the matching packet fields.
CUTOUT_ORDER: tuple[str, str, str] = ("science", "reference", "difference")
STAMP_SIZE = 63
PAD_VALUE = 1e-9
#: Pixels at or above this magnitude are float32 overflow sentinels, not data.
OVERFLOW_SENTINEL = 1e38
#: An L2 norm above this overflows production's float32 ``np.linalg.norm`` (sum of squares beyond
#: float32 max, ~3.4e38), which then zeroes the channel; we reject such stamps (with a margin).
NORM_LIMIT = float(np.sqrt(np.finfo(np.float32).max / 2))
_TOTAL_LIMIT = NORM_LIMIT**2
_FITS_FLOAT32 = np.dtype(">f4")
#: How to treat overflow sentinels: reject the alert, or reproduce production (zeroed channel).
OVERFLOW_MODES = ("reject", "production")


def decode_stamp(data: bytes | None) -> np.ndarray:
    """Gunzip and decode one stamp into a native float32 2-D array (NaNs kept).

    Raises
    ------
    StampDecodeError
        With the reason, when the bytes are absent or undecodable or the image has a bad shape.
    """
    return _decode_raw(data).astype(np.float32)  # native byte order; a copy we may modify in place


def _decode_raw(data: bytes | None) -> np.ndarray:
    # The stamp as FITS stores it (a read-only big-endian view of the inflated bytes), shape checked.
    if not data:
        raise StampDecodeError("cutout is missing or empty")
    image = decode_fits_image(gunzip(data))
    height, width = image.shape
    if height > STAMP_SIZE or width > STAMP_SIZE:
        raise StampDecodeError(f"cutout is {height}x{width}, larger than {STAMP_SIZE} px on a side")
    return image


def normalize_stamp(image: np.ndarray, *, overflow: str = "reject") -> np.ndarray:
    """NaN → 0, then divide by the L2 norm; raise ``StampDecodeError`` instead of dividing badly.

    ``image`` is a native float32 array and is modified in place.
    """
    if overflow == "production":
        return _normalize_like_production(image)
    np.copyto(image, 0.0, where=np.isnan(image))
    norm = _plain_norm(image)
    if norm is None:
        _raise_unnormalisable(image)
    image /= np.float32(norm)
    return image


def _plain_norm(image: np.ndarray) -> float | None:
    """The L2 norm (float64 sums) when the stamp needs no care, else None.

    One pass decides it: the sum of squares is NaN if any pixel is NaN, infinite if any is
    infinite, at least 1e76 with a sentinel, 0 for an all-zero stamp; only a sum strictly between
    0 and ``NORM_LIMIT**2`` means finite, non-zero, sentinel-free and safely normalisable.
    """
    flat = image.astype(np.float64).ravel()
    total = float(np.dot(flat, flat))
    return math.sqrt(total) if 0.0 < total < _TOTAL_LIMIT else None


def _raise_unnormalisable(image: np.ndarray) -> None:
    # Say why a NaN-free stamp failed _plain_norm, in the order a user would look for it.
    if not np.isfinite(image).all():
        raise StampDecodeError("cutout holds infinite pixel values")
    n_sentinel = int(np.count_nonzero(np.abs(image) >= OVERFLOW_SENTINEL))
    if n_sentinel:
        raise StampDecodeError(
            f"cutout holds {n_sentinel} float32 overflow sentinel(s) (|v| >= 1e38); "
            "production would zero this channel (use overflow='production' to reproduce that)"
        )
    flat = image.astype(np.float64).ravel()
    norm = math.sqrt(float(np.dot(flat, flat)))
    if norm == 0.0:
        raise StampDecodeError("cutout is all zero (or all NaN)")
    raise StampDecodeError(
        f"cutout values are too large (L2 norm {norm:.3g}): production's float32 norm overflows "
        "and zeroes this channel (use overflow='production' to reproduce that)"
    )


def _normalize_like_production(image: np.ndarray) -> np.ndarray:
    # np.nan_to_num maps ±inf to ±float32 max; np.linalg.norm then overflows in float32 and the
    # division zeroes the channel. That is production's behaviour, reproduced for parity studies.
    image = np.nan_to_num(image)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        image = image / np.linalg.norm(image)
    if not np.isfinite(image).all():
        raise StampDecodeError("cutout is all zero (or all NaN): production would produce NaN")
    return image.astype(np.float32, copy=False)


def make_triplet(alert: Alert, *, overflow: str = "reject") -> np.ndarray:
    """Build the (63, 63, 3) float32 triplet [science, reference, difference] of one alert.

    Parameters
    ----------
    alert : Alert
        The packet whose three cutouts are used.
    overflow : {"reject", "production"}
        ``"reject"`` (default) rejects stamps holding float32 overflow sentinels;
        ``"production"`` reproduces production, which silently zeroes such a channel.

    Raises
    ------
    CutoutError
        Naming the cutout and the reason, for any stamp that cannot be used.
    """
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, not {overflow!r}")
    triplet = np.full((STAMP_SIZE, STAMP_SIZE, 3), PAD_VALUE, dtype=np.float32)
    for channel, (name, field) in enumerate(zip(CUTOUT_ORDER, CUTOUT_FIELDS)):
        try:
            raw = _decode_raw(alert.cutouts.get(field))
            height, width = raw.shape
            target = triplet[:height, :width, channel]
            # Hot path: a clean float32 stamp is divided straight from the FITS bytes into the
            # triplet (float32 arithmetic, as production); anything else takes the careful path.
            norm = _plain_norm(raw) if overflow == "reject" and raw.dtype == _FITS_FLOAT32 else None
            if norm is not None:
                np.divide(raw, np.float32(norm), out=target)
            else:
                target[...] = normalize_stamp(raw.astype(np.float32), overflow=overflow)
        except StampDecodeError as exc:
            raise CutoutError(f"{name} cutout: {exc}", candid=alert.candid, object_id=alert.object_id) from None
    return triplet
