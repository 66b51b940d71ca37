"""Cutout stamps → the model's 63x63x3 image triplet, exactly as production computes it.

Production (the BTSbot/Kowalski code) does, per cutout: gunzip → FITS → ``np.nan_to_num`` →
divide by ``np.linalg.norm`` (float32 arithmetic, as the stamps are big-endian float32) → pad
bottom/right to 63x63 with 1e-9 → stack [science, reference, difference]. We do the same, but
reject what production would silently turn into garbage: undecodable bytes, oversize stamps,
all-zero or non-finite images (checked *before* dividing), and float32 overflow sentinels
(|v| >= 1e38, which make production's float32 norm overflow and zero the whole channel).

Speed: each cutout is inflated once (ISA-L); three clean full-size float32 stamps (the common case)
are read at fixed FITS offsets, checked through their float64 sums of squares and divided into the
triplet in one vectorised pass; anything else takes the per-channel path, which gives the same
triplet or the same first error.
"""

from __future__ import annotations

import math

import numpy as np

from brightscan.alerts.limits import DEFAULT_LIMITS
from brightscan.alerts.records import CUTOUT_FIELDS, Alert
from brightscan.errors import CutoutError
from brightscan.preprocess.fits import StampDecodeError, decode_fits_image, gunzip, simple_image_layout

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
_CLEAN_LAYOUT = (">f4", STAMP_SIZE, STAMP_SIZE)
_STAMP_BYTES = STAMP_SIZE * STAMP_SIZE * 4
#: How to treat overflow sentinels: reject the alert, or reproduce production (zeroed channel).
OVERFLOW_MODES = ("reject", "production")


def decode_stamp(data: bytes | None, max_bytes: int = DEFAULT_LIMITS.max_cutout_bytes) -> np.ndarray:
    """Gunzip (at most ``max_bytes``) and decode one stamp into a native float32 2-D array (NaNs kept).

    Raises
    ------
    StampDecodeError
        With the reason, when the bytes are absent, undecodable or too large, or the image has a
        bad shape.
    """
    return _decode_raw(data, max_bytes).astype(np.float32)  # native byte order; a copy we may modify


def _decode_raw(data: bytes | None, max_bytes: int) -> np.ndarray:
    # The stamp as FITS stores it (a read-only big-endian view of the inflated bytes), shape checked.
    return _image_of(_inflate(data, max_bytes))


def _inflate(data: bytes | None, max_bytes: int) -> bytes:
    if not data:
        raise StampDecodeError("cutout is missing or empty")
    return gunzip(data, max_bytes)


def _image_of(raw: bytes) -> np.ndarray:
    image = decode_fits_image(raw)
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
            "production would zero this channel (--overflow production reproduces that)"
        )
    flat = image.astype(np.float64).ravel()
    norm = math.sqrt(float(np.dot(flat, flat)))
    if norm == 0.0:
        raise StampDecodeError("cutout is all zero (or all NaN)")
    raise StampDecodeError(
        f"cutout values are too large (L2 norm {norm:.3g}): production's float32 norm overflows "
        "and zeroes this channel (--overflow production reproduces that)"
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


def make_triplet(alert: Alert, *, overflow: str = "reject",
                 max_cutout_bytes: int = DEFAULT_LIMITS.max_cutout_bytes) -> np.ndarray:
    """Build the (63, 63, 3) float32 triplet [science, reference, difference] of one alert.

    Parameters
    ----------
    alert : Alert
        The packet whose three cutouts are used.
    overflow : {"reject", "production"}
        ``"reject"`` (default) rejects stamps holding float32 overflow sentinels;
        ``"production"`` reproduces production, which silently zeroes such a channel.
    max_cutout_bytes : int, optional
        A stamp inflating to more is rejected while inflating (``ReadLimits.max_cutout_bytes``).

    Raises
    ------
    CutoutError
        Naming the cutout and the reason, for any stamp that cannot be used.
    """
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, not {overflow!r}")
    inflated: list[bytes | StampDecodeError] = []  # each cutout inflated once, for either path
    for field in CUTOUT_FIELDS:
        try:
            inflated.append(_inflate(alert.cutouts.get(field), max_cutout_bytes))
        except StampDecodeError as exc:
            inflated.append(exc)
    if overflow == "reject":
        triplet = _clean_full_size_triplet(inflated)
        if triplet is not None:
            return triplet
    triplet = np.full((STAMP_SIZE, STAMP_SIZE, 3), PAD_VALUE, dtype=np.float32)
    for channel, (name, raw) in enumerate(zip(CUTOUT_ORDER, inflated)):
        try:
            if isinstance(raw, StampDecodeError):
                raise raw
            image = _image_of(raw)
            height, width = image.shape
            target = triplet[:height, :width, channel]
            # A clean float32 stamp is divided straight from the FITS bytes into the triplet
            # (float32 arithmetic, as production); anything else takes the careful path.
            norm = _plain_norm(image) if overflow == "reject" and image.dtype == _FITS_FLOAT32 else None
            if norm is not None:
                np.divide(image, np.float32(norm), out=target)
            else:
                target[...] = normalize_stamp(image.astype(np.float32), overflow=overflow)
        except StampDecodeError as exc:
            raise CutoutError(f"{name} cutout: {exc}", candid=alert.candid, object_id=alert.object_id) from None
    return triplet


def _clean_full_size_triplet(inflated: list[bytes | StampDecodeError]) -> np.ndarray | None:
    """The hot path: three clean 63x63 float32 stamps normalised in one vectorised pass.

    Returns None whenever any stamp needs care (undecodable, smaller, NaN, inf, sentinel, zero);
    the per-channel path then produces the same triplet or the same first error, in channel order.
    """
    pixels = []
    for raw in inflated:
        layout = simple_image_layout(raw) if isinstance(raw, bytes) and raw.startswith(b"SIMPLE  =") else None
        if layout is None or layout[:3] != _CLEAN_LAYOUT:
            return None
        pixels.append(raw[layout[3] : layout[3] + _STAMP_BYTES])
    stack = np.frombuffer(b"".join(pixels), dtype=_FITS_FLOAT32).reshape(3, STAMP_SIZE, STAMP_SIZE)
    flat = stack.reshape(3, -1).astype(np.float64)
    totals = np.einsum("ij,ij->i", flat, flat).tolist()  # sums of squares, accumulated in float64
    # NaN, inf, all-zero and sentinel stamps all show in the sums of squares
    if not all(0.0 < total < _TOTAL_LIMIT for total in totals):
        return None
    norms = np.array([math.sqrt(total) for total in totals], dtype=np.float32)
    triplet = np.empty((STAMP_SIZE, STAMP_SIZE, 3), dtype=np.float32)
    np.divide(stack, norms[:, None, None], out=triplet.transpose(2, 0, 1))  # float32, as production
    return triplet
