"""Rubin alerts → model inputs: the cutout triplet at one size, and the Rubin feature sets.

Size policy (docs/rubin.md). Rubin sizes each stamp from the source's footprint: the real
LSSTCam and pre-survey samples in ``../shared`` measure 30x30 (33 of 37 alerts), 31, 35 and 48 px,
and Rubin documents stamps up to about 100 px. A model takes one size, ``size`` (default
:data:`RUBIN_STAMP_SIZE` = 48 px of 0.2", 9.6"): each stamp is *centre*-cropped when larger (the
source sits at the stamp's centre, so cropping keeps it and drops sky) and centre-padded when
smaller. Normalisation is ZTF's, per channel, before padding: NaN (masked or unwarped template
pixels) → 0, then divide by the L2 norm; all-zero, infinite and overflowing stamps are refused
before dividing (:func:`brightscan.preprocess.cutouts.normalize_stamp`). Padding is
:data:`~brightscan.preprocess.cutouts.PAD_VALUE`, as for ZTF. Channels: science, template,
difference (the model's one order, :data:`~brightscan.preprocess.cutouts.CUTOUT_ORDER`).

Features. ``magpsf``/``sigmapsf`` come from ``psfFlux``/``psfFluxErr`` in nJy
(:func:`brightscan.alerts.rubin.flux_to_mag`); the history features are computed from the same
causal detection list as ZTF's (:func:`brightscan.preprocess.features.causal_detections`: earlier
alerts merged, de-duplicated, nothing after the alert's own time), over all bands and over the
alert's own band (Rubin has six, and a peak in ``u`` says little of one in ``i``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from brightscan.alerts.records import CUTOUT_FIELDS
from brightscan.alerts.columns import MIN_COLUMNS, Columns
from brightscan.alerts.rubin import BANDS, MJD_TO_JD, NJY_ZERO_POINT, RubinAlert
from brightscan.errors import CutoutError, FeatureError
from brightscan.preprocess.crossmatch import StarGalaxyCatalog
from brightscan.preprocess.cutouts import CUTOUT_ORDER, PAD_VALUE, normalize_stamp
from brightscan.preprocess.features import causal_detections
from brightscan.preprocess.fits import StampDecodeError, decode_fits_image

__all__ = [
    "MAX_RUBIN_STAMP", "RUBIN_FEATURE_SETS", "RUBIN_STAMP_SIZE", "compute_rubin_features",
    "fit_stamp", "make_rubin_triplet", "rubin_named_features",
]

#: Default model input side for Rubin, in pixels (the largest stamp in the real samples).
RUBIN_STAMP_SIZE = 48
#: Stamps larger than this are refused as damaged (Rubin documents about 100 px at most).
MAX_RUBIN_STAMP = 512

#: Rubin feature sets, in model order. ``*_sg`` sets need a star/galaxy catalogue.
RUBIN_FEATURE_SETS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "rubin_v1": (
        "magpsf", "sigmapsf", "snr", "reliability", "extendedness", "fid", "ra", "dec", "ndet",
        "age", "peakmag_so_far", "maxmag_so_far", "days_since_peak", "days_to_peak",
        "peakmag_so_far_band", "ndet_band", "mean_reliability",
    ),
})
RUBIN_FEATURE_SETS = MappingProxyType({
    **RUBIN_FEATURE_SETS,
    "rubin_v1_sg": (*RUBIN_FEATURE_SETS["rubin_v1"], "sgscore_xm", "distsg_xm"),
})
#: Fields Rubin leaves null or NaN when a measurement fails (4 of 25 real Fink alerts, and the
#: pre-survey and DC2 samples, lack extendedness): the alert is still scored, with this value,
#: outside the field's [0, 1] range, so the model can tell "not measured" from any measurement.
NOT_MEASURED: Mapping[str, float] = MappingProxyType({"extendedness": -1.0})
_FROM_CANDIDATE = ("magpsf", "sigmapsf", "snr", "reliability", "extendedness", "fid", "ra", "dec")


def fit_stamp(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Centre-crop ``image`` to at most ``size`` a side; also where it goes in a ``size`` square.

    The stamp's pixel ``(h // 2, w // 2)`` (the source, at the stamp's centre) lands on the
    square's ``(size // 2, size // 2)``, whether the stamp is cropped or padded.
    """
    height, width = image.shape
    top = min(max(height // 2 - size // 2, 0), max(height - size, 0))
    left = min(max(width // 2 - size // 2, 0), max(width - size, 0))
    cropped = image[top : top + min(height, size), left : left + min(width, size)]
    pad_top = max(size // 2 - height // 2, 0) if height < size else 0
    pad_left = max(size // 2 - width // 2, 0) if width < size else 0
    place = (slice(pad_top, pad_top + cropped.shape[0]), slice(pad_left, pad_left + cropped.shape[1]))
    return cropped, place


def make_rubin_triplet(alert: RubinAlert, size: int = RUBIN_STAMP_SIZE) -> np.ndarray:
    """The ``(size, size, 3)`` float32 triplet [science, template, difference] of a Rubin alert.

    Raises
    ------
    CutoutError
        Naming the cutout and the reason (missing, not FITS, empty, too large, all zero, infinite).
    """
    triplet = np.full((size, size, 3), PAD_VALUE, dtype=np.float32)
    for channel, (name, field) in enumerate(zip(CUTOUT_ORDER, CUTOUT_FIELDS)):
        try:
            image = _decode(alert.cutouts.get(field))
            cropped, place = fit_stamp(image, size)
            triplet[place[0], place[1], channel] = normalize_stamp(cropped.astype(np.float32))
        except StampDecodeError as exc:
            raise CutoutError(f"{name} cutout: {exc}", candid=alert.candid, object_id=alert.object_id) from None
    return triplet


def _decode(data: bytes | None) -> np.ndarray:
    # Rubin's cutouts are uncompressed FITS (PRIMARY image in nJy, then UNCERT and PSFIMAGE).
    if not data:
        raise StampDecodeError("cutout is missing or empty")
    image = decode_fits_image(data)
    if max(image.shape) > MAX_RUBIN_STAMP:
        raise StampDecodeError(f"cutout is {image.shape[0]}x{image.shape[1]}, larger than {MAX_RUBIN_STAMP} px")
    return image


def compute_rubin_features(alert: RubinAlert, feature_set: str = "rubin_v1", *,
                           earlier: Iterable[Mapping[str, Any]] = (),
                           catalog: StarGalaxyCatalog | None = None) -> np.ndarray:
    """The ordered float32 feature vector of a Rubin alert.

    Raises
    ------
    FeatureError
        A required field is missing or not finite, or a ``*_sg`` set is asked for without a
        star/galaxy catalogue.
    KeyError
        For a feature set that is not in :data:`RUBIN_FEATURE_SETS`.
    """
    names = RUBIN_FEATURE_SETS[feature_set]
    values = rubin_named_features(alert, earlier=earlier, catalog=catalog, needed=names)
    return np.array([values[name] for name in names], dtype=np.float32)


def rubin_named_features(alert: RubinAlert, *, earlier: Iterable[Mapping[str, Any]] = (),
                         catalog: StarGalaxyCatalog | None = None,
                         needed: Iterable[str] | None = None) -> dict[str, float]:
    """Every Rubin feature (or just ``needed``) as a name → value mapping."""
    needed = tuple(needed) if needed is not None else RUBIN_FEATURE_SETS["rubin_v1"]
    cand = alert.candidate
    out = {name: _measured(alert, name, cand.get(name)) for name in _FROM_CANDIDATE if name in needed}
    out.update(_history(alert, earlier))
    if {"sgscore_xm", "distsg_xm"} & set(needed):
        if catalog is None:
            raise FeatureError("feature set needs a star/galaxy catalogue (--crossmatch) and none was given",
                               candid=alert.candid, object_id=alert.object_id)
        score, distance = catalog.nearest(_number(alert, "ra", cand.get("ra")), _number(alert, "dec", cand.get("dec")))
        out.update(sgscore_xm=score, distsg_xm=distance)
    return out


def _history(alert: RubinAlert, earlier: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    cand = alert.candidate
    jd = _number(alert, "jd", cand.get("jd"))
    _number(alert, "magpsf", cand.get("magpsf"))  # a zero or non-finite psfFlux is no detection
    earlier = tuple(earlier)
    from_columns = None if earlier else _detections_from_columns(alert)
    if from_columns is not None:
        mags, jds, own_band, reliabilities = from_columns
    else:
        detections = causal_detections(alert, earlier)
        mags = [float(d["magpsf"]) for d in detections]
        jds = [float(d["jd"]) for d in detections]
        own_band = [m for d, m in zip(detections, mags) if d.get("fid") == cand.get("fid")]
        reliabilities = [float(d["reliability"]) for d in detections
                         if isinstance(d.get("reliability"), (int, float)) and math.isfinite(d["reliability"])]
    peak = min(range(len(mags)), key=mags.__getitem__)  # on ties the earliest wins, as for ZTF
    first_jd = min(jds)
    first_seen = alert.dia_object.get("firstDiaSourceMjdTai")  # schema 8.0 and later
    if isinstance(first_seen, (int, float)) and math.isfinite(first_seen):
        first_jd = min(first_jd, float(first_seen) + 2400000.5)
    return {
        "ndet": float(len(mags)),
        "age": jd - first_jd,
        "peakmag_so_far": mags[peak],
        "maxmag_so_far": max(mags),
        "days_since_peak": jd - jds[peak],
        "days_to_peak": jds[peak] - first_jd,
        "peakmag_so_far_band": min(own_band),
        "ndet_band": float(len(own_band)),
        "mean_reliability": _mean(alert, "reliability", reliabilities),
    }


def _detections_from_columns(alert: RubinAlert) -> tuple[list[float], list[float], list[float], list[float]] | None:
    """``causal_detections`` of an alert's own history read from its columns: (mags, jds, own band's mags, reliabilities).

    The same detections in the same order as the ZTF-named views give (a zero, null or
    non-finite ``psfFlux`` or time is no detection; nothing later than the alert; the first of
    each ``diaSourceId`` kept; stable sort by ``jd``), each value computed as :func:`ztf_view`
    computes it, so the features are bit for bit the same (tests/preprocess/test_rubin_inputs.py).
    None when the history is short, or not columns of the usual types (Parquet, a fastavro
    re-read): the views then.
    """
    history = alert.prv_dia_sources
    if not isinstance(history, Columns) or len(history) < MIN_COLUMNS:  # short: the views cost less
        return None
    ids, id_nulls = history.array("diaSourceId")
    mjd, mjd_nulls = history.array("midpointMjdTai")
    flux, flux_nulls = history.array("psfFlux")
    reliability, reliability_nulls = history.array("reliability")
    if id_nulls is not None or ids.dtype != np.int64 or mjd.dtype != np.float64 or flux.dtype != np.float64 or \
            reliability.dtype != np.float64:
        return None
    cand = alert.candidate
    jd_now = cand["jd"]
    with np.errstate(invalid="ignore"):
        jds = mjd + MJD_TO_JD
        usable = np.isfinite(flux) & (flux != 0) & np.isfinite(mjd) & (jds <= jd_now)
    for nulls in (mjd_nulls, flux_nulls):
        if nulls is not None:
            usable &= ~nulls
    kept = np.flatnonzero(usable)
    _, first = np.unique(ids[kept], return_index=True)  # the first of each diaSourceId
    if len(first) < len(kept):
        kept = kept[np.sort(first)]
    own_id = cand.get("candid")
    with_cand = own_id is None or not bool((ids[kept] == own_id).any())  # else an earlier copy of it counts
    order = np.argsort(np.append(jds[kept], jd_now) if with_cand else jds[kept], kind="stable")
    earlier = order[order < len(kept)]
    flux_sorted = flux[kept][earlier]
    mags = [NJY_ZERO_POINT - 2.5 * math.log10(abs(value)) for value in flux_sorted.tolist()]
    times = jds[kept][earlier].tolist()
    band = history.array("band")[0][kept][earlier]
    fid = cand.get("fid")
    if fid is not None:
        own = band == BANDS[fid - 1]
    else:  # records whose band has no fid (null, unknown) share the alert's
        own = np.array([not (type(b) is str and b in BANDS) for b in band.tolist()], dtype=bool)
    rel = reliability[kept][earlier]
    good = np.isfinite(rel) if reliability_nulls is None else np.isfinite(rel) & ~reliability_nulls[kept][earlier]
    reliabilities = rel[good].tolist()
    own_mags = np.array(mags)[own].tolist() if mags else []
    if with_cand:  # the alert itself, where the stable sort put it among them
        at = int(np.flatnonzero(order == len(kept))[0])
        mags.insert(at, float(cand["magpsf"]))
        times.insert(at, float(jd_now))
        own_mags.insert(int(own[:at].sum()), float(cand["magpsf"]))
        value = cand.get("reliability")
        if isinstance(value, (int, float)) and math.isfinite(value):
            reliabilities.insert(int(good[:at].sum()), float(value))
    return mags, times, own_mags, reliabilities


def _mean(alert: RubinAlert, name: str, values: list[float]) -> float:
    if not values:  # no detection so far carries one (a pipeline without a reliability model)
        raise FeatureError(f"missing feature {name} in every detection so far",
                           candid=alert.candid, object_id=alert.object_id)
    return sum(values) / len(values)


def _measured(alert: RubinAlert, name: str, value: Any) -> float:
    if name in NOT_MEASURED and (value is None or (isinstance(value, float) and math.isnan(value))):
        return NOT_MEASURED[name]
    return _number(alert, name, value)


def _number(alert: RubinAlert, name: str, value: Any) -> float:
    if value is None:
        raise FeatureError(f"missing feature {name}", candid=alert.candid, object_id=alert.object_id)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FeatureError(f"feature {name} is not a number ({type(value).__name__})",
                           candid=alert.candid, object_id=alert.object_id)
    value = float(value)
    if not math.isfinite(value):
        raise FeatureError(f"feature {name} is not finite ({value})", candid=alert.candid, object_id=alert.object_id)
    return value
