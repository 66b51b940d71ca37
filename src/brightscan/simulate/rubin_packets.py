"""Rubin packets of one simulated source: ``lsst.v11_1`` records with FITS cutouts in nJy.

Every field of the official schema is present (taken from the schema in ``lsst-alert-packet``,
so a new field never breaks the writer): what we simulate is filled in, the rest is null where the
schema allows it and zero otherwise. Each packet is validated by fastavro before it is written.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import numpy as np

from brightscan.simulate.rubin import (
    BANDS,
    MJD_TO_JD,
    NJY_ZP,
    PIXEL_SCALE,
    RUBIN_SCHEMA_ID,
    RubinVisits,
    wire_message,
)
from brightscan.simulate.sources import Source

__all__ = ["blank_record", "encode_packets", "render_cutouts"]

_STAR = 0  # scene.kind of a star (brightscan.simulate.scene)


@cache
def _schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """fastavro's parsed alert schema and its expanded (all names inlined) form."""
    import fastavro

    from brightscan.alerts.rubin_wire import rubin_schema

    parsed, _ = rubin_schema(RUBIN_SCHEMA_ID)
    return parsed, fastavro.schema.expand_schema(parsed)


def blank_record(schema: dict[str, Any]) -> dict[str, Any]:
    """A record of ``schema`` with every field null (when nullable) or zero."""
    return {field["name"]: _blank(field["type"]) for field in schema["fields"]}


def _blank(kind: Any) -> Any:
    if isinstance(kind, list):
        return None if "null" in kind else _blank(kind[0])
    if isinstance(kind, dict):
        if kind["type"] == "record":
            return blank_record(kind)
        if kind["type"] == "array":
            return []
        return _blank(kind["type"])
    return {"long": 0, "int": 0, "float": 0.0, "double": 0.0, "string": "", "boolean": False,
            "bytes": b""}.get(kind)


def _sub_schema(name: str) -> dict[str, Any]:
    expanded = _schema()[1]
    for field in expanded["fields"]:
        kinds = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for kind in kinds:
            if isinstance(kind, dict) and kind.get("type") == "array":
                kind = kind["items"]
            if isinstance(kind, dict) and kind.get("type") == "record" and kind["name"].endswith(name):
                return kind
    raise KeyError(name)


def encode_packets(source: Source, object_id: int, visits: RubinVisits, rng: np.random.Generator,
                   n_nights: int, start_jd: float) -> list[tuple[int, int, bytes]]:
    """``(night, diaSourceId, wire-format bytes)`` of every alert inside the survey window."""
    import fastavro

    parsed = _schema()[0]
    out = []
    detected = np.flatnonzero(visits.detected)
    sources = {i: _dia_source(source, object_id, visits, i, rng) for i in detected}
    for k, i in enumerate(detected):
        if visits.jd[i] < start_jd or visits.jd[i] >= start_jd + n_nights:
            continue
        earlier = [sources[j] for j in detected[:k]]
        record = blank_record(_schema()[1])
        record.update(
            diaSourceId=sources[i]["diaSourceId"], diaSource=sources[i], prvDiaSources=earlier,
            prvDiaForcedSources=[_forced(object_id, visits, j) for j in range(len(visits.jd)) if visits.jd[j] < visits.jd[i]],
            diaObject=_dia_object(source, object_id, earlier + [sources[i]]),
            **render_cutouts(source, visits, i, rng),
        )
        fastavro.validation.validate(record, parsed, raise_errors=True)
        out.append((int(visits.jd[i] - start_jd), sources[i]["diaSourceId"], wire_message(parsed, record)))
    return out


def _dia_source(source: Source, object_id: int, visits: RubinVisits, i: int, rng: np.random.Generator) -> dict:
    record = blank_record(_sub_schema("diaSource"))
    mjd = float(visits.jd[i] - MJD_TO_JD)
    real = source.cls != "bogus"
    record.update(
        diaSourceId=int(mjd * 1e5) * 10**7 + source.index % 10**7, visit=int(mjd * 1e3), detector=int(rng.integers(189)),
        diaObjectId=object_id, midpointMjdTai=mjd, ra=source.ra + rng.normal(0, 0.02) / 3600,
        dec=source.dec + rng.normal(0, 0.02) / 3600, band=BANDS[visits.band[i]],
        psfFlux=float(visits.flux[i]), psfFluxErr=float(visits.flux_err[i]), snr=float(visits.snr[i]),
        reliability=float(rng.beta(12, 1.5) if real else rng.beta(1.5, 4)),
        extendedness=float(rng.beta(1.5, 6) if real else rng.beta(4, 2)),
        ssObjectId=None if _nullable(record, "ssObjectId") else 0,
    )
    return record


def _nullable(record: dict, name: str) -> bool:
    return record.get(name, 0) is None


def _forced(object_id: int, visits: RubinVisits, j: int) -> dict:
    record = blank_record(_sub_schema("diaForcedSource"))
    mjd = float(visits.jd[j] - MJD_TO_JD)
    record.update(diaForcedSourceId=int(mjd * 1e5) * 10**7 + object_id % 10**7, diaObjectId=object_id,
                  midpointMjdTai=mjd, band=BANDS[visits.band[j]], psfFlux=float(visits.flux[j]),
                  psfFluxErr=float(visits.flux_err[j]))
    return record


def _dia_object(source: Source, object_id: int, detections: list[dict]) -> dict:
    record = blank_record(_sub_schema("diaObject"))
    record.update(diaObjectId=object_id, ra=source.ra, dec=source.dec, nDiaSources=len(detections),
                  firstDiaSourceMjdTai=min(d["midpointMjdTai"] for d in detections))
    return record


def render_cutouts(source: Source, visits: RubinVisits, i: int, rng: np.random.Generator) -> dict[str, bytes]:
    """Science, template and difference FITS stamps (nJy, 0.2" pixels) of visit ``i``."""
    peak = source.peak_mag
    size = 60 if peak < 15.5 else 48 if peak < 17 else 30  # bright sources have larger footprints
    sigma = visits.seeing[i] / 2.355 / PIXEL_SCALE  # PSF sigma in pixels
    yy, xx = np.mgrid[:size, :size] - size // 2
    psf = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    psf /= psf.sum()
    scene = _scene(source, visits.band[i], xx, yy, sigma)
    noise = visits.flux_err[i] * np.sqrt(psf.__pow__(2).sum())  # per-pixel sigma giving that PSF-flux error
    science = scene + visits.true_flux[i] * psf + rng.normal(0, noise, psf.shape)
    template = scene + rng.normal(0, noise / 3, psf.shape)  # a coadd: deeper than one visit
    variance = np.full(psf.shape, noise**2, dtype=np.float32)
    return {name: _fits(image, variance, psf) for name, image in
            (("cutoutScience", science), ("cutoutTemplate", template), ("cutoutDifference", science - template))}


def _scene(source: Source, band: int, xx: np.ndarray, yy: np.ndarray, sigma: float) -> np.ndarray:
    scene = source.scene
    image = np.zeros(xx.shape)
    colour_term = 1.0 if BANDS[band] in "ug" else 0.0
    for k in range(len(scene.x)):
        x, y = scene.x[k] / PIXEL_SCALE, scene.y[k] / PIXEL_SCALE
        if abs(x) > xx.shape[1] or abs(y) > xx.shape[0]:
            continue
        flux = 10 ** (0.4 * (NJY_ZP - scene.mag_r[k] - colour_term * scene.color[k]))
        if scene.kind[k] == _STAR:
            major = minor = sigma
        else:  # a Gaussian of the galaxy's half-light radius, seen through the PSF
            major = np.hypot(scene.r_eff[k] / 1.1774 / PIXEL_SCALE, sigma)
            minor = np.hypot(scene.r_eff[k] * scene.axis_ratio[k] / 1.1774 / PIXEL_SCALE, sigma)
        c, s = np.cos(scene.angle[k]), np.sin(scene.angle[k])
        u, v = (xx - x) * c + (yy - y) * s, -(xx - x) * s + (yy - y) * c
        image += flux / (2 * np.pi * major * minor) * np.exp(-(u**2 / major**2 + v**2 / minor**2) / 2)
    return image


def _fits(image: np.ndarray, variance: np.ndarray, psf: np.ndarray) -> bytes:
    from astropy.io import fits

    hdus = fits.HDUList([fits.PrimaryHDU(image.astype(">f4")),
                         fits.ImageHDU(variance.astype(">f4"), name="UNCERT"),
                         fits.ImageHDU(psf.astype(">f4"), name="PSFIMAGE")])
    hdus[0].header["BUNIT"] = "nJy"
    out = io.BytesIO()
    hdus.writeto(out)
    return out.getvalue()
