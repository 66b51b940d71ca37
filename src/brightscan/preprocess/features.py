"""Extracted features: named, ordered feature sets and the history features, one function for
training and serving.

History features follow production (the ZTF broker's BTSbot code): the history is the alert's
``prv_candidates`` plus its own candidate; non-detections (no ``magpsf``) are skipped; negative
subtractions are kept; ``first_alert_jd = min(jdstarthist, earliest detection jd)``; on ties the
first entry (the earliest) wins; ``drb`` falls back to ``rb`` when absent. In *causal* mode the
candidates of the source's earlier alerts are merged in, de-duplicated by ``candid`` (else by
``jd`` and ``fid``), and nothing later than the alert's own ``jd`` is ever used — production merges
stored alerts without that time cut, which leaks future detections into replayed features.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from brightscan.alerts.records import Alert
from brightscan.errors import FeatureError

#: Feature sets of the published models, in the order the models expect them.
FEATURE_SETS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "icml2023": (
        "sgscore1", "distpsnr1", "sgscore2", "distpsnr2", "fwhm", "magpsf", "sigmapsf", "ra",
        "dec", "diffmaglim", "ndethist", "nmtchps", "age", "peakmag_so_far",
    ),
    "v1": (
        "sgscore1", "distpsnr1", "sgscore2", "distpsnr2", "fwhm", "magpsf", "sigmapsf", "chipsf",
        "ra", "dec", "diffmaglim", "ndethist", "nmtchps", "age", "days_since_peak", "days_to_peak",
        "peakmag_so_far", "drb", "ncovhist", "nnondet", "chinr", "sharpnr", "scorr", "sky",
        "maxmag_so_far",
    ),
})

#: Features computed from the history rather than read from the candidate.
HISTORY_FEATURES = ("age", "peakmag_so_far", "maxmag_so_far", "days_since_peak", "days_to_peak", "nnondet")
_HISTORY_SET = frozenset(HISTORY_FEATURES)


def feature_names(feature_set: str) -> tuple[str, ...]:
    """The ordered feature names of a named set; ``KeyError`` names the known sets."""
    try:
        return FEATURE_SETS[feature_set]
    except KeyError:
        raise KeyError(f"unknown feature set {feature_set!r} (known: {', '.join(FEATURE_SETS)})") from None


def compute_features(
    alert: Alert, feature_set: str = "v1", *, earlier: Iterable[Mapping[str, Any]] = ()
) -> np.ndarray:
    """Compute the ordered float32 feature vector of one alert.

    Parameters
    ----------
    alert : Alert
        The alert; its candidate and ``prv_candidates`` form the history.
    feature_set : str
        A key of :data:`FEATURE_SETS`.
    earlier : iterable of mappings
        Candidate records (at least ``jd``, ``magpsf``, ``fid``, ``candid``) of the same source's
        earlier alerts, merged causally into the history.

    Raises
    ------
    FeatureError
        When a required field is missing, non-numeric or NaN ("missing feature sgscore1").
    """
    names = feature_names(feature_set)
    values = named_features(alert, earlier=earlier, needed=names)
    return np.array([values[name] for name in names], dtype=np.float32)


def named_features(
    alert: Alert, *, earlier: Iterable[Mapping[str, Any]] = (), needed: Iterable[str] | None = None
) -> dict[str, float]:
    """All features of :data:`FEATURE_SETS` (or just ``needed``) as a name → value mapping."""
    needed = tuple(needed) if needed is not None else FEATURE_SETS["v1"]
    cand = alert.candidate
    out: dict[str, float] = {}
    if not _HISTORY_SET.isdisjoint(needed):
        out.update(history_features(alert, earlier))
    for name in needed:
        if name in out:
            continue
        value = cand.get(name)
        if name == "drb" and value is None:
            value = cand.get("rb")
        out[name] = _number(alert, name, value)
    return out


def history_features(alert: Alert, earlier: Iterable[Mapping[str, Any]] = ()) -> dict[str, float]:
    """``age``, ``peakmag_so_far``, ``maxmag_so_far``, ``days_since_peak``, ``days_to_peak``, ``nnondet``."""
    cand = alert.candidate
    jd = _number(alert, "jd", cand.get("jd"))
    _number(alert, "magpsf", cand.get("magpsf"))  # the alert itself must be a detection
    detections = causal_detections(alert, earlier)
    mags = [_number(alert, "magpsf", d["magpsf"]) for d in detections]
    jds = [_number(alert, "jd", d["jd"]) for d in detections]
    peak = min(range(len(mags)), key=mags.__getitem__)  # first minimum: on ties the earliest wins
    first_jd = min(jds)
    jdstarthist = cand.get("jdstarthist")
    if jdstarthist is not None:
        first_jd = min(first_jd, _number(alert, "jdstarthist", jdstarthist))
    ndethist = _number(alert, "ndethist", cand.get("ndethist"))
    ncovhist = _number(alert, "ncovhist", cand.get("ncovhist"))
    return {
        "age": jd - first_jd,
        "peakmag_so_far": mags[peak],
        "maxmag_so_far": max(mags),
        "days_since_peak": jd - jds[peak],
        "days_to_peak": jds[peak] - first_jd,
        "nnondet": ncovhist - ndethist,
    }


def causal_detections(alert: Alert, earlier: Iterable[Mapping[str, Any]] = ()) -> list[Mapping[str, Any]]:
    """The detections of the history up to and including this alert, sorted by ``jd``.

    ``earlier`` records come first, then ``prv_candidates``, then the candidate; duplicates
    (same ``candid``, else same ``jd`` and ``fid``) keep their first occurrence, and any record
    later than the alert's own ``jd`` is dropped.
    """
    cand = alert.candidate
    jd_now = cand["jd"]
    seen: set[Any] = set()
    kept: list[Mapping[str, Any]] = []
    for record in (*earlier, *alert.prv_candidates, cand):
        get = record.get
        rec_jd = get("jd")
        if get("magpsf") is None or rec_jd is None:
            continue  # a non-detection
        if type(rec_jd) is not float:
            rec_jd = _number(alert, "jd of an earlier detection", rec_jd)
        if rec_jd > jd_now:
            continue  # the future
        candid = get("candid")
        key = candid if candid is not None else (round(float(rec_jd), 7), get("fid"))
        if key in seen:
            continue
        seen.add(key)
        kept.append(record)
    kept.sort(key=lambda r: r["jd"])  # stable: equal jds keep their order
    return kept


def _number(alert: Alert, name: str, value: Any) -> float:
    if type(value) is float and value == value:  # the common case, checked cheaply (NaN != NaN)
        return value
    if value is None:
        raise FeatureError(f"missing feature {name}", candid=alert.candid, object_id=alert.object_id)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FeatureError(
            f"feature {name} is not a number ({type(value).__name__} {value!r:.40})",
            candid=alert.candid, object_id=alert.object_id,
        )
    value = float(value)
    if math.isnan(value):
        raise FeatureError(f"feature {name} is NaN", candid=alert.candid, object_id=alert.object_id)
    return value
