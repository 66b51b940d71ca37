"""The survey's observing log: nightly weather and seeing, each source's visits, and photometry.

* Weather is a two-state Markov chain per night (clear nights stay clear with probability 0.85,
  cloudy ones stay cloudy with 0.55), shared by every source.
* Each source's field is revisited every 2 or 3 nights (ZTF public survey cadence); on an
  observed night it gets a g and an r visit (each 90% likely), sometimes a second r visit.
* A visit's depth (``diffmaglim``, 5-sigma) is about 20.5 mag, shallower in bad seeing, in
  moonlight (more so in g) and in poor transparency; the pixel noise of the images follows it.
* A detection is a positive difference flux measured at S/N >= 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brightscan.simulate.lightcurves import difference_flux
from brightscan.simulate.sources import Source

PIXEL_SCALE = 1.01  # arcsec per pixel (ZTF)
ZP = {1: 26.32, 2: 26.20}  # typical magzpsci per band (30 s exposures)
NIGHT_MARGIN = 40  # nights simulated before the survey start (for prv_candidates history)
LUNATION = 29.53  # days


@dataclass(frozen=True)
class Nights:
    """Conditions of every night, shared by all sources (index 0 = survey start - NIGHT_MARGIN)."""

    jd0: float  # JD at 0h UT of the first night in the table
    clear: np.ndarray  # bool: the telescope observed
    seeing: np.ndarray  # median FWHM of the night (arcsec)
    depth: np.ndarray  # transparency offset of the depth (mag)
    moon: np.ndarray  # moon illumination 0..1


def make_nights(seed: int, start_jd: float, n_nights: int) -> Nights:
    """Draw the nightly conditions from the master seed (independent of the number of sources)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 - 1,)))
    n = n_nights + NIGHT_MARGIN + 400  # sources may outlive the survey; their late visits are not alerts
    clear = np.empty(n, dtype=bool)
    state = True
    for k in range(n):
        state = rng.random() < (0.85 if state else 0.45)
        clear[k] = state
    moon = 0.5 * (1 - np.cos(2 * np.pi * (np.arange(n) / LUNATION + rng.uniform())))
    return Nights(start_jd - NIGHT_MARGIN, clear, rng.lognormal(np.log(2.0), 0.18, n),
                  rng.normal(0.0, 0.2, n) - rng.exponential(0.1, n), moon)


@dataclass(frozen=True)
class Visits:
    """Every visit of one source's position; arrays of equal length, sorted by time."""

    jd: np.ndarray
    fid: np.ndarray  # 1 = g, 2 = r
    night: np.ndarray  # index into Nights
    seeing: np.ndarray  # FWHM arcsec
    diffmaglim: np.ndarray  # 5-sigma depth
    magzpsci: np.ndarray
    sky: np.ndarray  # science sky level (DN)
    flux: np.ndarray  # true difference flux (DN)
    flux_err: np.ndarray  # 1-sigma PSF-flux error (DN)
    measured: np.ndarray  # measured difference flux (DN)

    @property
    def snr(self) -> np.ndarray:
        """Measured signal-to-noise ratio of the difference flux."""
        return self.measured / self.flux_err

    @property
    def detected(self) -> np.ndarray:
        """Alert-grade detections: positive, S/N >= 5."""
        return self.snr >= 5.0


def schedule(source: Source, nights: Nights, rng: np.random.Generator, history_days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visit times, bands and night indices of a source between its window start - history and its end."""
    cadence = 2 if rng.random() < 0.6 else 3
    offset = int(rng.integers(cadence))
    first = max(int(np.floor(source.t_begin - history_days - nights.jd0)), 0)
    last = min(int(np.ceil(source.t_end - nights.jd0)), len(nights.clear) - 1)
    ks = np.arange(first, last + 1)
    ks = ks[((ks + offset) % cadence == 0) & nights.clear[ks]]
    times, bands, idx = [], [], []
    for k in ks:
        base = nights.jd0 + k + rng.uniform(0.15, 0.45)  # 3h-11h UT: the Palomar night
        plan = [(1, 0.0), (2, rng.uniform(0.02, 0.06))]
        if rng.random() < 0.15:
            plan.append((2, rng.uniform(0.07, 0.1)))
        for fid, dt in plan:
            if rng.random() < 0.9:
                times.append(base + dt)
                bands.append(fid)
                idx.append(k)
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], np.asarray(bands, dtype=int)[order], np.asarray(idx, dtype=int)[order]


def observe(source: Source, nights: Nights, rng: np.random.Generator, history_days: float) -> Visits:
    """Simulate the photometry of every visit of ``source``."""
    jd, fid, night = schedule(source, nights, rng, history_days)
    n = len(jd)
    seeing = nights.seeing[night] * rng.lognormal(0.0, 0.08, n) * np.where(fid == 1, 1.08, 1.0)
    moon_cost = np.where(fid == 1, 0.7, 0.35) * nights.moon[night]
    depth = 20.75 + nights.depth[night] - moon_cost - 2.5 * np.log10(seeing / 2.0) + rng.normal(0, 0.08, n)
    zp = np.array([ZP[f] for f in fid]) + rng.normal(0, 0.04, n) + np.minimum(nights.depth[night], 0)
    sky = np.where(fid == 1, 70.0, 140.0) + np.where(fid == 1, 450.0, 260.0) * nights.moon[night]
    sky = sky * rng.lognormal(0.0, 0.1, n)
    flux = difference_flux(source.lc, jd, fid, rng) * 10 ** (0.4 * zp)
    flux_err = 10 ** (0.4 * (zp - depth)) / 5.0
    # photon noise of the source itself (gain ~6 e-/DN)
    err = np.sqrt(flux_err**2 + np.maximum(flux, 0) / 6.2)
    measured = flux + rng.normal(0.0, 1.0, n) * err
    return Visits(jd, fid, night, seeing, depth, zp, sky, flux, err, measured)
