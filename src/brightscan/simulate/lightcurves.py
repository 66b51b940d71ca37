"""Light curves: the true difference flux of a source at any time, per band, per class.

Fluxes are in units of a 0-magnitude source (``10**(-0.4 * mag)``), *relative to the reference
image*: a supernova is absent from the reference, an AGN nucleus or a variable star is in it, so
their difference flux is ``flux(t) - flux_reference``. Only positive differences make alerts
(the BTS candidate filter keeps ``isdiffpos = 't'``).

Templates
---------
* SNe use the Bazin function ``exp(-dt/t_fall) / (1 + exp(-dt/t_rise))`` normalised to the peak
  magnitude, with per-subtype time-scales and a g band that fades faster and is bluer at peak.
* AGN: a slow Bazin flare on the nucleus plus damped-random-walk (Ornstein-Uhlenbeck) jitter.
* CVs: a train of dwarf-nova outbursts (1-day rise, exponential decline) over a faint quiescent
  counterpart.
* Variable stars: a sinusoid of fixed period on a star present in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Band identifiers of ZTF: 1 = g, 2 = r.
G, R = 1, 2


@dataclass(frozen=True)
class LightCurve:
    """Parameters of one source's light curve (see module docstring for the models)."""

    kind: str  # "sn", "agn", "cv", "varstar" or "bogus"
    t_peak: float = 0.0  # JD of peak (SN, AGN flare) or of the first outburst (CV)
    peak_mag: dict[int, float] = field(default_factory=dict)  # peak magnitude per band
    t_rise: dict[int, float] = field(default_factory=dict)  # Bazin rise time-scale per band (days)
    t_fall: dict[int, float] = field(default_factory=dict)  # Bazin decline time-scale per band (days)
    base_mag: dict[int, float] = field(default_factory=dict)  # magnitude in the reference (AGN, CV, star)
    drw_tau: float = 100.0  # AGN damped-random-walk time-scale (days)
    drw_sigma: float = 0.0  # AGN DRW amplitude (fraction of the nucleus flux)
    outbursts: tuple[float, ...] = ()  # CV outburst start times (JD)
    period: float = 1.0  # variable-star period (days)
    amplitude: float = 0.0  # variable-star half-amplitude (fraction of mean flux)
    phase: float = 0.0  # variable-star phase (radians)


def _bazin(t: np.ndarray, t_peak: float, t_rise: float, t_fall: float) -> np.ndarray:
    """Bazin profile normalised to 1 at its maximum."""
    # the maximum of exp(-x/f)/(1+exp(-x/r)) sits at x = r*log(f/r - 1)
    x_max = t_rise * np.log(max(t_fall / t_rise - 1.0, 1e-3))
    def raw(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, -40 * t_rise, 40 * t_fall)
        return np.exp(-x / t_fall) / (1.0 + np.exp(-x / t_rise))
    return raw(t - t_peak + x_max) / raw(np.array(x_max))


def flux_of_mag(mag: np.ndarray | float) -> np.ndarray:
    """Flux relative to a 0-mag source."""
    return np.power(10.0, -0.4 * np.asarray(mag, dtype=float))


def difference_flux(lc: LightCurve, t: np.ndarray, band: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """True difference flux (science minus reference) at times ``t`` in bands ``band``.

    Parameters
    ----------
    lc : LightCurve
        The source's parameters.
    t : ndarray, shape (n,)
        Times (JD), sorted ascending.
    band : ndarray of int, shape (n,)
        ZTF ``fid`` per time (1 = g, 2 = r).
    rng : numpy.random.Generator
        Source of the AGN random walk.

    Returns
    -------
    ndarray, shape (n,)
        Difference flux relative to a 0-mag source (may be negative).
    """
    out = np.zeros(len(t))
    for b in (G, R):
        sel = band == b
        if not sel.any():
            continue
        tb = t[sel]
        if lc.kind == "sn":
            out[sel] = flux_of_mag(lc.peak_mag[b]) * _bazin(tb, lc.t_peak, lc.t_rise[b], lc.t_fall[b])
        elif lc.kind == "agn":
            out[sel] = _agn_flux(lc, tb, b, rng)
        elif lc.kind == "cv":
            out[sel] = _cv_flux(lc, tb, b)
        elif lc.kind == "varstar":
            base = flux_of_mag(lc.base_mag[b])
            out[sel] = base * lc.amplitude * np.sin(2 * np.pi * tb / lc.period + lc.phase)
    return out


def _agn_flux(lc: LightCurve, t: np.ndarray, band: int, rng: np.random.Generator) -> np.ndarray:
    nucleus = flux_of_mag(lc.base_mag[band])
    flare = flux_of_mag(lc.peak_mag[band]) * _bazin(t, lc.t_peak, lc.t_rise[band], lc.t_fall[band])
    # exact Ornstein-Uhlenbeck update between sorted times; bluer band varies more
    walk = np.empty(len(t))
    sigma = lc.drw_sigma * (1.3 if band == G else 1.0)
    value = rng.normal(0.0, sigma)
    previous = t[0] if len(t) else 0.0
    for i, ti in enumerate(t):
        decay = np.exp(-(ti - previous) / lc.drw_tau)
        value = value * decay + rng.normal(0.0, sigma * np.sqrt(1.0 - decay**2))
        walk[i] = value
        previous = ti
    return flare + nucleus * walk


def _cv_flux(lc: LightCurve, t: np.ndarray, band: int) -> np.ndarray:
    quiescent = flux_of_mag(lc.base_mag[band])
    peak = flux_of_mag(lc.peak_mag[band])
    total = np.full(len(t), quiescent)
    for start in lc.outbursts:
        dt = t - start
        rise = 1.0 / (1.0 + np.exp(-np.clip(dt - 0.8, -20, 20) / 0.25))  # about one day to rise
        total += peak * rise * np.exp(-np.clip(dt - 1.5, 0, None) / lc.t_fall[band])
    return total - quiescent
