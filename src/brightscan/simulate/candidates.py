"""ZTF ``candidate`` and ``prv_candidate`` records built from simulated visits.

Identifiers follow ZTF's layout: ``nid`` counts nights since 2017-01-01, ``pid`` is
``nid * 10**9 + (UT fraction of day in 1e-6) * 10**3 + rcid`` and ``candid`` is
``pid * 10**6 + (source index mod 10**6)``, so every candid is a unique positive int64 and
sorts by time like ZTF's. ``objectId`` is ``ZTF`` + the year of the first detection + seven
letters from the source index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from brightscan.simulate.crossmatch import Catalogues, match_fields
from brightscan.simulate.observing import PIXEL_SCALE, Visits
from brightscan.simulate.sources import JD_ZTF_START, Source

JD_NID_ZERO = 2457754.5  # 2017-01-01 0h UT: ZTF's night counter origin
RBVERSION, DRBVERSION = "t17_f5_c3", "d6_m7"
PROGRAMPI = "Kulkarni"  # the public survey's PI in ZTF packets


def object_id(index: int, year: int) -> str:
    """A ZTF-like object id, unique per source index: ``ZTF`` + 2-digit year + 7 letters."""
    value = (index * 2_654_435_761 + 12_345) % 26**7  # an invertible scramble of the index
    letters = []
    for _ in range(7):
        value, rest = divmod(value, 26)
        letters.append(chr(ord("a") + rest))
    return f"ZTF{year % 100:02d}{''.join(reversed(letters))}"


def jd_year(jd: float) -> int:
    """Calendar year of a Julian date (good to a day)."""
    return int(2000 + (jd - 2451544.5) // 365.2425)


@dataclass(frozen=True)
class Detections:
    """Per-visit measured quantities, arrays aligned with :class:`Visits` (NaN where undetected)."""

    detected: np.ndarray  # bool: an alert-grade detection (S/N >= 5, positive)
    weak: np.ndarray  # bool: counted in ndethist (|S/N| >= 3)
    magpsf: np.ndarray
    sigmapsf: np.ndarray
    snr: np.ndarray
    dx: np.ndarray  # centroid error east (arcsec)
    dy: np.ndarray  # centroid error north (arcsec)
    drb: np.ndarray  # deep real/bogus score
    rb: np.ndarray  # classic real/bogus score
    chipsf: np.ndarray
    fwhm: np.ndarray  # pixels


def measure(source: Source, visits: Visits, rng: np.random.Generator) -> Detections:
    """Detection flags and measured quantities of every visit (bogus sources get forced hits)."""
    n = len(visits.jd)
    snr = visits.snr.copy()
    detected = snr >= 5.0
    if source.cls == "bogus":
        window = np.flatnonzero((visits.jd >= source.t_begin) & (visits.jd <= source.t_end))
        detected[:] = False
        snr[:] = rng.normal(0, 1, n)
        if len(window):
            hits = rng.choice(window, size=min(len(window), int(rng.integers(1, 4))), replace=False)
            detected[hits] = True
            mags = source.peak_mag + rng.uniform(0, 1.5, len(hits))
            snr[hits] = 10 ** (0.4 * (visits.diffmaglim[hits] - mags)) * 5
    flux = snr * visits.flux_err
    with np.errstate(divide="ignore", invalid="ignore"):
        magpsf = np.where(detected, visits.magzpsci - 2.5 * np.log10(np.maximum(flux, 1e-9)), np.nan)
    sigmapsf = np.where(detected, np.hypot(1.0857 / np.maximum(snr, 1e-3), 0.01), np.nan)
    pos_err = 0.05 + 0.6 * visits.seeing / np.maximum(np.abs(snr), 3)
    real = source.cls != "bogus"
    if real:
        drb = 1 - rng.beta(0.4, 14, n) * (1 + 5 * np.clip(9 - snr, 0, None) / 4)
        rb = rng.beta(7, 2.5, n)
        fwhm = visits.seeing / PIXEL_SCALE * rng.lognormal(0, 0.1, n)
    else:
        drb = rng.beta(1.0, 2.5, n) if source.bogus_kind == "cosmic" else rng.beta(1.6, 2.0, n)
        rb = rng.beta(2, 4, n)
        fwhm = np.where(source.bogus_kind == "cosmic", rng.uniform(0.6, 1.3, n),
                        visits.seeing / PIXEL_SCALE * rng.lognormal(0.2, 0.15, n))
    chipsf = rng.lognormal(np.log(1.3), 0.45, n) * (1 + (np.maximum(snr, 0) / 25) ** 2 * rng.uniform(0.2, 2.0, n))
    return Detections(detected, np.abs(snr) >= 3, magpsf, sigmapsf, snr, rng.normal(0, pos_err), rng.normal(0, pos_err),
                      np.clip(drb, 0, 1), rb, chipsf, fwhm)


@dataclass(frozen=True)
class SourceStatic:
    """Per-source fields that do not change between visits."""

    object_id: str
    field: int
    rcid: int
    xpos: float
    ypos: float
    ref_seeing: float
    prior_ncov: int
    rfid: dict[int, int]
    jdstartref: float
    jdendref: float
    nframesref: dict[int, int]
    gaia: dict[str, float]


def make_static(source: Source, visits: Visits, det: Detections, rng: np.random.Generator) -> SourceStatic:
    """Draw the per-source fields (objectId, field, CCD position, reference image, Gaia match)."""
    first = source.prior_first_jd if source.prior_ndet > 0 else None
    if first is None:
        hits = visits.jd[det.detected]
        first = float(hits[0]) if len(hits) else float(source.t_begin)
    field = 245 + int((source.dec + 31) / 7.0) * 48 + int(source.ra / 7.5) % 48
    rcid = int(rng.integers(64))
    start = max(source.t_begin - 30, JD_ZTF_START)
    jdstartref = JD_ZTF_START + rng.uniform(20, 200)
    gaia = {"neargaia": float(rng.uniform(1, 30)), "neargaiabright": float(rng.uniform(20, 200)),
            "maggaia": float(rng.uniform(14, 20)), "maggaiabright": float(rng.uniform(10, 13))}
    return SourceStatic(
        object_id(source.index, jd_year(first)), field, rcid, float(rng.uniform(10, 3062)), float(rng.uniform(10, 3070)),
        float(rng.uniform(1.6, 2.1)), int((start - JD_ZTF_START) * rng.uniform(0.45, 0.85)),
        {1: field * 1000 + 120 + rcid, 2: field * 1000 + 220 + rcid}, jdstartref, jdstartref + rng.uniform(30, 90),
        {1: int(rng.integers(15, 41)), 2: int(rng.integers(15, 41))}, gaia,
    )


def identifiers(visits: Visits, static: SourceStatic, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nid``, ``pid`` and ``candid`` of every visit (int64)."""
    nid = np.floor(visits.jd - JD_NID_ZERO).astype(np.int64)
    frac = visits.jd + 0.5 - np.floor(visits.jd + 0.5)
    pid = nid * 10**9 + np.floor(frac * 1e6).astype(np.int64) * 1000 + static.rcid
    return nid, pid, pid * 10**6 + index % 10**6


def common_fields(visits: Visits, static: SourceStatic, i: int, nid: int, pid: int) -> dict[str, Any]:
    """Fields shared by detections and non-detections of visit ``i``."""
    fid = int(visits.fid[i])
    band = "zg" if fid == 1 else "zr"
    return {
        "jd": float(visits.jd[i]), "fid": fid, "pid": int(pid), "diffmaglim": float(visits.diffmaglim[i]),
        "pdiffimfilename": f"ztf_{int(pid)}_{static.field:06d}_{band}_c{static.rcid // 4 + 1:02d}_o_q{static.rcid % 4 + 1}_scimrefdiffimg.fits",
        "programpi": PROGRAMPI, "programid": 1, "nid": int(nid), "rcid": static.rcid, "field": static.field,
        "magzpsci": float(visits.magzpsci[i]), "magzpsciunc": 2e-5, "magzpscirms": 0.03,
        "clrcoeff": 0.1 if fid == 2 else -0.05, "clrcounc": 2e-5, "rbversion": RBVERSION,
    }


def detection_fields(
    source: Source, visits: Visits, det: Detections, static: SourceStatic, cat: Catalogues,
    i: int, candid: int, rng: np.random.Generator,
) -> dict[str, Any]:
    """Measured fields of detection ``i`` (present in both candidate and prv_candidate records)."""
    mag, fwhm = float(det.magpsf[i]), float(det.fwhm[i])
    cos_dec = max(np.cos(np.radians(source.dec)), 1e-3)
    magap = mag + rng.normal(0.02, 0.06)
    elong = 1 + rng.exponential(0.08)
    match = match_fields(cat, float(det.dx[i]), float(det.dy[i]))
    out = {
        "candid": int(candid), "isdiffpos": "t", "tblid": int(rng.integers(0, 30)),
        "xpos": static.xpos + float(det.dx[i]), "ypos": static.ypos + float(det.dy[i]),
        "ra": source.ra + float(det.dx[i]) / 3600 / cos_dec, "dec": source.dec + float(det.dy[i]) / 3600,
        "magpsf": mag, "sigmapsf": float(det.sigmapsf[i]), "chipsf": float(det.chipsf[i]),
        "magap": magap, "sigmagap": float(det.sigmapsf[i]) * 0.9, "magapbig": magap + rng.normal(0.01, 0.05),
        "sigmagapbig": float(det.sigmapsf[i]) * 1.1, "sky": float(rng.normal(0, 0.6)), "magdiff": magap - mag,
        "fwhm": fwhm, "classtar": float(rng.uniform(0.3, 0.7) if fwhm < 1.3 else rng.uniform(0.75, 1.0)),
        "mindtoedge": float(min(static.xpos, static.ypos, 3072 - static.xpos, 3080 - static.ypos)),
        "magfromlim": float(visits.diffmaglim[i]) - magap, "seeratio": float(visits.seeing[i] / static.ref_seeing),
        "aimage": fwhm / 2.355 * elong * PIXEL_SCALE, "bimage": fwhm / 2.355 * PIXEL_SCALE,
        "aimagerat": elong / 2.355, "bimagerat": 1 / 2.355, "elong": elong, "nneg": int(rng.poisson(1.5)),
        "nbad": 0, "rb": float(det.rb[i]), "ssdistnr": -999.0, "ssmagnr": -999.0, "ssnamenr": "null",
        "sumrat": float(rng.uniform(0.85, 1.0)), "scorr": float(det.snr[i] * rng.uniform(0.9, 1.3)),
    }
    out.update({k: v for k, v in match.items() if k in ("distnr", "magnr", "sigmagnr", "chinr", "sharpnr", "ranr", "decnr")})
    out["_match"] = match
    return out


def candidate_record(common: dict[str, Any], detection: dict[str, Any], static: SourceStatic, *, ndethist: int,
                     ncovhist: int, jdstarthist: float, drb: float, rng: np.random.Generator) -> dict[str, Any]:
    """The ``candidate`` record of an alert."""
    fid = common["fid"]
    record = {**common, **{k: v for k, v in detection.items() if k != "_match"}, **detection["_match"]}
    record.update(
        ndethist=int(ndethist), ncovhist=int(ncovhist), jdstarthist=float(jdstarthist), jdendhist=common["jd"],
        tooflag=0, rfid=static.rfid[fid], jdstartref=static.jdstartref, jdendref=static.jdendref,
        nframesref=static.nframesref[fid], dsnrms=float(rng.uniform(5, 20)), ssnrms=float(rng.uniform(15, 60)),
        nmatches=int(rng.integers(200, 1500)), zpclrcov=-6e-5, zpmed=common["magzpsci"], clrmed=0.7, clrrms=0.25,
        exptime=30.0, drb=float(drb), drbversion=DRBVERSION, **static.gaia,
    )
    record["dsdiff"] = record["dsnrms"] - record["ssnrms"]
    return record
