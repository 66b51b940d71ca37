"""A simulated Rubin survey: the ZTF simulator's sources, observed with Rubin's cadence and depth.

Each source is drawn by :func:`brightscan.simulate.sources.draw_source` (the same classes, light
curves, hosts and scenes as the ZTF survey) and observed Rubin's way:

- cadence: a source's field is visited every ~3 nights (wide-fast-deep), as a pair of visits
  ~33 min apart in two different bands, bands drawn with the survey's filter shares (u 6 %, g 9 %,
  r 22 %, i 22 %, z 20 %, y 21 %);
- depth: single-visit 5-sigma limits u 23.8, g 24.5, r 24.0, i 23.4, z 22.8, y 22.0 (± 0.3 with the
  sky), seeing 0.5-1.2" FWHM;
- fluxes in nJy (mag = 31.4 - 2.5 log10 nJy). The light curves are ZTF's g and r models: u and g
  follow g, r to y follow r, with a colour term per band;
- an alert for every difference-image source with |S/N| >= 5 (Rubin alerts on negative ones too);
- cutouts: FITS in nJy with PRIMARY, UNCERT (variance) and PSFIMAGE HDUs, 0.2" pixels, 30 px or
  larger for bright sources (up to 60), as the real stamps are sized from the footprint;
- packets: ``lsst.v11_1`` records (every field the schema has; what we do not simulate is null or
  zero), written as Kafka wire-format messages, one file per alert, and validated with fastavro;
- labels: 1 for a supernova whose peak is brighter than ``bright_limit`` (configurable); scanner
  saves by the ZTF simulator's scanner model (:func:`brightscan.simulate.scanners.save_time`).
"""

from __future__ import annotations

import csv
import io
import struct
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from brightscan.errors import ConfigError, InputError
from brightscan.simulate.config import CLASSES, ClassMix, ScannerConfig
from brightscan.simulate.lightcurves import G, R, difference_flux
from brightscan.simulate.scanners import make_scan_times, save_time
from brightscan.simulate.sources import Source, draw_source

__all__ = ["RUBIN_SCHEMA_ID", "RubinSurveyConfig", "simulate_rubin_survey"]

#: Packets are written with lsst.v11_1 (wire schema id 1101).
RUBIN_SCHEMA_ID = 1101
BANDS = ("u", "g", "r", "i", "z", "y")
BAND_SHARES = np.array([0.06, 0.09, 0.22, 0.22, 0.20, 0.21])
DEPTH_5SIGMA = np.array([23.8, 24.5, 24.0, 23.4, 22.8, 22.0])
#: Which ZTF light-curve band each Rubin band follows, and its colour offset (mag) from it.
LC_BAND = np.array([G, G, R, R, R, R])
COLOUR = np.array([0.6, 0.0, 0.0, 0.15, 0.3, 0.4])
PIXEL_SCALE = 0.2  # arcsec
NJY_ZP = 31.4
MJD_TO_JD = 2400000.5


@dataclass(frozen=True)
class RubinSurveyConfig:
    """What to simulate."""

    n_sources: int = 200  # sources, split by class_mix
    n_nights: int = 30  # survey nights
    seed: int = 0  # everything random derives from it
    start_mjd: float = 61000.0  # first night (MJD)
    bright_limit: float = 18.5  # label 1: a supernova peaking brighter than this (mag)
    revisit_days: float = 3.0  # mean gap between a field's visit pairs
    class_mix: ClassMix = ClassMix()  # class fractions, as in the ZTF survey
    scanners: ScannerConfig = ScannerConfig()  # the scanner model of the ZTF survey

    def validate(self) -> None:
        """Raise :class:`ConfigError` on impossible values."""
        if self.n_sources < 1 or self.n_nights < 1 or self.revisit_days <= 0:
            raise ConfigError("a Rubin survey needs n_sources >= 1, n_nights >= 1 and revisit_days > 0")
        self.class_mix.fractions()


def simulate_rubin_survey(config: RubinSurveyConfig, out_dir: str | Path) -> dict[str, int]:
    """Write ``alerts/<YYYYMMDD>/<diaSourceId>.avro``, ``labels.csv`` and ``scanner_saves.csv``.

    Returns
    -------
    dict
        ``sources``, ``alerts``, ``positive`` and ``saved`` counts.
    """
    config.validate()
    out = Path(out_dir)
    alerts_dir = out / "alerts"
    if alerts_dir.exists() and any(alerts_dir.iterdir()):
        raise InputError(f"{alerts_dir} already holds alerts; choose an empty output folder")
    alerts_dir.mkdir(parents=True, exist_ok=True)
    from brightscan.simulate.rubin_packets import encode_packets

    classes = _classes(config)
    start_jd = config.start_mjd + MJD_TO_JD
    scans = make_scan_times(config.seed, start_jd - 30, config.n_nights + 400, config.scanners)
    counts = {"sources": config.n_sources, "alerts": 0, "positive": 0, "saved": 0}
    with open(out / "labels.csv", "w", newline="") as lf, open(out / "scanner_saves.csv", "w", newline="") as sf:
        labels = csv.writer(lf)
        saves = csv.writer(sf)
        labels.writerow(["objectId", "label", "class", "peak_mag"])
        saves.writerow(["objectId", "save_jd"])
        for index, cls in enumerate(classes):
            rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(index,)))
            t_centre = start_jd + rng.uniform(-10, config.n_nights + 10)
            source = draw_source(index, CLASSES[cls], rng, t_centre)
            object_id = 10**15 + index  # diaObjectIds are positive longs
            label = int(source.cls in ("bright_sn", "dim_sn") and source.peak_mag < config.bright_limit)
            visits = observe(source, config, rng, start_jd)
            packets = encode_packets(source, object_id, visits, rng, config.n_nights, start_jd)
            for night, dia_source_id, payload in packets:
                folder = alerts_dir / night_name(config.start_mjd + night)
                folder.mkdir(exist_ok=True)
                (folder / f"{dia_source_id}.avro").write_bytes(payload)
            saved = save_time(source.cls, label, visits.alert_jd(), visits.alert_mag(), scans, config.scanners,
                              np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(index, 1))))
            labels.writerow([object_id, label, source.subtype, f"{source.peak_mag:.4f}"])
            saves.writerow([object_id, "" if saved is None else f"{saved:.6f}"])
            counts["alerts"] += len(packets)
            counts["positive"] += label
            counts["saved"] += saved is not None
    return counts


def night_name(mjd: float) -> str:
    """``YYYYMMDD`` of the (UT) day holding an MJD, as the ZTF survey names its night folders."""
    return (date(1858, 11, 17) + timedelta(days=int(mjd))).strftime("%Y%m%d")


def _classes(config: RubinSurveyConfig) -> np.ndarray:
    fractions = np.array(config.class_mix.fractions())
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(2**31 - 3,)))
    return rng.choice(len(CLASSES), size=config.n_sources, p=fractions)


@dataclass(frozen=True)
class RubinVisits:
    """Every visit of one source: time, band, depth, seeing, true and measured flux (nJy)."""

    jd: np.ndarray
    band: np.ndarray  # index into BANDS
    depth: np.ndarray  # 5-sigma limiting magnitude
    seeing: np.ndarray  # arcsec FWHM
    true_flux: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray

    @property
    def snr(self) -> np.ndarray:
        return self.flux / self.flux_err

    @property
    def detected(self) -> np.ndarray:
        return np.abs(self.snr) >= 5.0

    def alert_jd(self) -> np.ndarray:
        return self.jd[self.detected]

    def alert_mag(self) -> np.ndarray:
        return NJY_ZP - 2.5 * np.log10(np.maximum(np.abs(self.flux[self.detected]), 1e-3))


def observe(source: Source, config: RubinSurveyConfig, rng: np.random.Generator, start_jd: float) -> RubinVisits:
    """Rubin's visits of a source over the survey (and 60 nights before it, for the history)."""
    nights, t = [], start_jd - 60 + rng.uniform(0, config.revisit_days)
    while t < start_jd + config.n_nights:
        nights.append(t)
        t += rng.exponential(config.revisit_days) + 0.5
    first = np.array(nights) + rng.uniform(0.05, 0.3, len(nights))  # within the night
    jd = np.sort(np.concatenate([first, first + 33 / 1440]))
    band = rng.choice(len(BANDS), size=len(jd), p=BAND_SHARES)
    depth = DEPTH_5SIGMA[band] + rng.normal(0, 0.3, len(jd))
    seeing = rng.uniform(0.5, 1.2, len(jd))
    flux0 = difference_flux(source.lc, jd, LC_BAND[band], rng)  # relative to a 0-mag source
    true = flux0 * 10 ** (0.4 * (NJY_ZP - COLOUR[band]))
    if source.cls == "bogus":  # artefacts: a few bright single-visit hits, nothing else
        true = np.where(rng.random(len(jd)) < 0.05, 10 ** (0.4 * (NJY_ZP - depth + 1.0)), 0.0)
    flux_err = 10 ** (0.4 * (NJY_ZP - depth)) / 5
    flux = true + rng.normal(0, flux_err)
    return RubinVisits(jd, band, depth, seeing, true, flux, flux_err)


def wire_message(parsed_schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """One Kafka wire-format message: magic 0, schema id, schemaless Avro."""
    import fastavro

    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed_schema, record)
    return b"\x00" + struct.pack(">i", RUBIN_SCHEMA_ID) + body.getvalue()
