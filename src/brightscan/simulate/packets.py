"""One source from start to finish: draw, observe, measure, render stamps, build alert packets.

Everything random about source ``i`` comes from ``SeedSequence(seed, spawn_key=(i,))`` (the
scanners from ``(i, 1)``), so a source's packets do not depend on how sources are split across
worker processes, or on how many sources the survey has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brightscan.simulate.candidates import (
    Detections, SourceStatic, candidate_record, common_fields, detection_fields, identifiers, make_static, measure,
)
from brightscan.simulate.config import BRIGHT_LIMIT, SurveyConfig
from brightscan.simulate.crossmatch import build_catalogues
from brightscan.simulate.fitsgz import cutout_bytes
from brightscan.simulate.images import StampMaker, add_cosmic_ray
from brightscan.simulate.observing import NIGHT_MARGIN, PIXEL_SCALE, Nights, Visits, observe
from brightscan.simulate.scanners import save_time
from brightscan.simulate.schema import encode_packet, encode_prv_candidate
from brightscan.simulate.sources import Source, draw_source

#: Columns of labels.csv after the fixed ones; a class leaves the others empty.
PARAM_COLUMNS = (
    "subtype", "ra", "dec", "t_peak", "t_rise", "t_fall", "color", "distance_mpc", "host_mag", "host_reff",
    "host_offset", "nucleus_mag", "quiescent_mag", "recurrence", "n_outbursts", "mean_mag", "period",
    "amplitude", "artefact", "n_alerts", "first_alert_jd",
)


@dataclass
class SourceOutput:
    """What one simulated source produced."""

    label_row: dict[str, Any]  # one row of labels.csv
    save_jd: float | None  # scanner save time
    packets: list[tuple[int, int, bytes]] = field(default_factory=list)  # (night index, candid, Avro bytes)
    peak: tuple[float, float, int] | None = None  # brightest alert: (magpsf, jd, fid); None without alerts


def source_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The random stream ``stream`` of source ``index`` under master ``seed``."""
    key = (index,) if stream == 0 else (index, stream)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def simulate_source(index: int, cls: str, config: SurveyConfig, nights: Nights, scans: np.ndarray) -> SourceOutput:
    """Simulate source ``index`` of class ``cls`` and encode its alert packets."""
    rng = source_rng(config.seed, index)
    survey_start = nights.jd0 + NIGHT_MARGIN
    source = draw_source(index, cls, rng, rng.uniform(survey_start - 20, survey_start + config.n_nights))
    visits = observe(source, nights, rng, config.history_days)
    det = measure(source, visits, rng)
    static = make_static(source, visits, det, rng)
    in_survey = (visits.night >= NIGHT_MARGIN) & (visits.night < NIGHT_MARGIN + config.n_nights)
    alerts = np.flatnonzero(det.detected & in_survey)
    packets = list(_packets(source, visits, det, static, alerts, config, rng))
    save = save_time(cls, source.label, visits.jd[alerts], det.magpsf[alerts], scans, config.scanners,
                     source_rng(config.seed, index, 1))
    observed = observed_label(cls, det.magpsf[alerts])
    row: dict[str, Any] = {"objectId": static.object_id,
                           "label": observed if config.label_from == "observed" else source.label,
                           "class": source.subtype, "peak_mag": round(source.peak_mag, 4),
                           "label_observed": observed, "label_true_peak": source.label}
    params = {**source.params, "ra": source.ra, "dec": source.dec, "n_alerts": len(alerts),
              "first_alert_jd": float(visits.jd[alerts[0]]) if len(alerts) else None}
    row.update({k: _csv_value(params.get(k)) for k in PARAM_COLUMNS})
    peak = None
    if len(alerts):
        k = int(np.argmin(det.magpsf[alerts]))
        peak = (float(det.magpsf[alerts][k]), float(visits.jd[alerts][k]), int(visits.fid[alerts][k]))
    return SourceOutput(row, save, packets, peak)


def observed_label(cls: str, alert_mags: np.ndarray) -> int:
    """1 for a supernova observed brighter than 18.5 mag in at least one alert (BTS's label).

    About 3.5% of simulated bright SNe peak brighter than 18.5 mag but are never *observed* so
    (gaps, noise), and some dim ones are observed brighter by noise; BTS labels both by what it saw.
    """
    return int(cls in ("bright_sn", "dim_sn") and bool(np.any(np.asarray(alert_mags) < BRIGHT_LIMIT)))


def _edge_crop(rng: np.random.Generator, config: SurveyConfig) -> tuple[slice, slice]:
    full = slice(None)
    if rng.random() >= config.edge_stamp_prob:
        return full, full
    keep = int(rng.integers(config.stamp_size // 2 + 4, config.stamp_size))
    cut = slice(0, keep) if rng.random() < 0.5 else slice(config.stamp_size - keep, None)
    return (cut, full) if rng.random() < 0.5 else (full, cut)


def _stamps(source: Source, visits: Visits, det: Detections, alerts: np.ndarray, config: SurveyConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    maker = StampMaker.build(source.scene, rng, config.stamp_size)
    n = len(alerts)
    sky_err = 10 ** (0.4 * (visits.magzpsci[alerts] - visits.diffmaglim[alerts])) / 5.0
    sigma_px = visits.seeing[alerts] / 2.355 / PIXEL_SCALE
    noise = sky_err / np.sqrt(4 * np.pi * sigma_px**2 * 1.25) / np.hypot(1.0, 0.35)
    flux = det.snr[alerts] * visits.flux_err[alerts]
    mismatch = rng.normal(0, 0.03, n)
    sub = rng.uniform(-0.5, 0.5, 2)
    if source.cls == "bogus":
        flux = np.zeros(n)
        if source.bogus_kind == "residual":
            mismatch = rng.choice([-1, 1], n) * rng.uniform(0.12, 0.3, n)
    sci, ref, diff = maker.render(
        rng, fid=visits.fid[alerts], seeing=visits.seeing[alerts], zp=visits.magzpsci[alerts],
        sky=visits.sky[alerts], noise=noise, flux=flux, mismatch=mismatch,
        dx=sub[0] - det.dx[alerts] / PIXEL_SCALE, dy=sub[1] - det.dy[alerts] / PIXEL_SCALE,
    )
    if source.bogus_kind == "cosmic":
        for k, i in enumerate(alerts):
            add_cosmic_ray(sci[k], diff[k], float(det.snr[i] * visits.flux_err[i]) * 0.5, rng)
    return sci, ref, diff


def _packets(source: Source, visits: Visits, det: Detections, static: SourceStatic, alerts: np.ndarray,
             config: SurveyConfig, rng: np.random.Generator) -> Iterator[tuple[int, int, bytes]]:
    if len(alerts) == 0:
        return
    cat = build_catalogues(source.scene, rng, source.ra, source.dec)
    sci, ref, diff = _stamps(source, visits, det, alerts, config, rng)
    rows, cols = _edge_crop(rng, config)
    nid, pid, candid = identifiers(visits, static, source.index)
    # earlier detections cannot outnumber earlier visits (bright variables are seen on most)
    prior_ndet = min(source.prior_ndet, int(0.9 * static.prior_ncov))
    ndethist = prior_ndet + np.cumsum(det.weak)
    ncovhist = static.prior_ncov + np.arange(1, len(visits.jd) + 1)
    weak_jd = np.where(det.weak, visits.jd, np.inf)
    first_weak = np.minimum.accumulate(weak_jd)
    prior_first = source.prior_first_jd if prior_ndet > 0 else None
    history: dict[int, bytes] = {}  # encoded prv records, built once, shared by later alerts

    def prv(j: int) -> bytes:
        if j not in history:
            common = common_fields(visits, static, j, nid[j], pid[j])
            if det.detected[j]:
                fields = detection_fields(source, visits, det, static, cat, j, candid[j], rng)
                common = prv_from_candidate(common, fields)
            history[j] = encode_prv_candidate(common)
        return history[j]

    for k, i in enumerate(alerts):
        common = common_fields(visits, static, i, nid[i], pid[i])
        fields = detection_fields(source, visits, det, static, cat, i, candid[i], rng)
        candidate = candidate_record(
            common, fields, static, ndethist=int(ndethist[i]), ncovhist=int(ncovhist[i]),
            jdstarthist=prior_first if prior_first is not None else float(first_weak[i]),
            drb=float(det.drb[i]), rng=rng,
        )
        lo = np.searchsorted(visits.jd, visits.jd[i] - config.history_days)
        previous = [prv(j) for j in range(lo, i)]
        history.setdefault(i, encode_prv_candidate(prv_from_candidate(common, fields)))
        c, p = int(candid[i]), int(pid[i])
        cutouts = (
            (f"candid{c}_pid{p}_targ_sci.fits.gz", cutout_bytes(sci[k][rows, cols], config.gzip_level)),
            (f"candid{c}_ref.fits.gz", cutout_bytes(ref[k][rows, cols], config.gzip_level)),
            (f"candid{c}_pid{p}_targ_scimref.fits.gz", cutout_bytes(diff[k][rows, cols], config.gzip_level)),
        )
        yield int(visits.night[i]), c, encode_packet(static.object_id, c, candidate, previous, cutouts)


def prv_from_candidate(common: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The prv_candidate record of an alert, for the alerts that follow it."""
    return {**common, **{k: v for k, v in fields.items() if k != "_match"}}


def _csv_value(value: Any) -> Any:
    """Empty for missing or NaN values, plain Python scalars otherwise."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
