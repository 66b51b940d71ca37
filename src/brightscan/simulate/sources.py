"""Drawing one source: its class parameters, light curve, sky position, scene and prior history.

Distances tie the pieces together for supernovae: the peak magnitude and the subtype's absolute
magnitude give a distance modulus, which sets the host galaxy's apparent magnitude and size.
Bright (nearby) SNe therefore sit on larger, brighter hosts than dim (distant) ones, the heuristic
the paper describes, without it being imposed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from brightscan.simulate.config import BRIGHT_LIMIT
from brightscan.simulate.lightcurves import G, R, LightCurve
from brightscan.simulate.scene import Scene, draw_scene, galaxy_sgscore

JD_ZTF_START = 2458197.5  # 2018-03-20, start of the ZTF public survey (origin of ndethist)

#: SN subtypes: (name, share among bright SNe, share among dim SNe, absolute peak mag,
#: t_rise range, t_fall range (r band), g-r colour at peak range).
SN_SUBTYPES = (
    ("SN Ia", 0.72, 0.55, -19.1, (2.5, 4.0), (18.0, 30.0), (-0.15, 0.05)),
    ("SN II", 0.18, 0.33, -17.3, (1.0, 2.5), (50.0, 110.0), (-0.2, 0.15)),
    ("SN Ib/c", 0.10, 0.12, -17.6, (2.0, 3.5), (14.0, 25.0), (0.05, 0.4)),
)


@dataclass
class Source:
    """Everything drawn for one source before its observations are simulated."""

    index: int  # position in the survey (0-based)
    cls: str  # simulator class (see config.CLASSES)
    subtype: str  # class written to labels.csv ("SN Ia", "AGN", ...)
    ra: float  # degrees
    dec: float  # degrees
    lc: LightCurve  # light-curve parameters
    scene: Scene  # static sky around the source
    t_begin: float  # JD from which the source can be detected
    t_end: float  # JD after which it cannot
    peak_mag: float  # brightest true magnitude in g or r (difference flux)
    prior_ndet: int = 0  # detections before the simulated window (ZTF since 2018)
    prior_first_jd: float | None = None  # first of those detections
    bogus_kind: str = ""  # "cosmic" or "residual" for bogus sources
    params: dict[str, float | str] = field(default_factory=dict)  # drawn values for labels.csv

    @property
    def label(self) -> int:
        """1 for a bright extragalactic transient (BTS target), else 0."""
        return int(self.cls == "bright_sn" and self.peak_mag < BRIGHT_LIMIT)


def galactic_latitude(ra: float, dec: float) -> float:
    """Galactic latitude (degrees) of an ICRS position."""
    ra_gp, dec_gp = np.radians(192.85948), np.radians(27.12825)
    r, d = np.radians(ra), np.radians(dec)
    s = np.sin(d) * np.sin(dec_gp) + np.cos(d) * np.cos(dec_gp) * np.cos(r - ra_gp)
    return float(np.degrees(np.arcsin(np.clip(s, -1, 1))))


def draw_position(rng: np.random.Generator, galactic: bool) -> tuple[float, float, float]:
    """Uniform on the ZTF sky (dec > -30), in (galactic) or out of (extragalactic) the plane."""
    while True:
        ra = rng.uniform(0, 360)
        dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-30)), 1.0)))
        b = galactic_latitude(ra, dec)
        if (abs(b) < 15) == galactic or (galactic and rng.random() < 0.15 and abs(b) < 30):
            return float(ra), float(dec), b


def stars_per_field(b: float) -> float:
    """Mean number of catalogued stars in the populated square around a source."""
    return 6.0 + 160.0 * np.exp(-abs(b) / 8.0)


def draw_source(index: int, cls: str, rng: np.random.Generator, t_centre: float) -> Source:
    """Draw a source of class ``cls`` active around ``t_centre`` (JD)."""
    drawer = {"bright_sn": _draw_sn, "dim_sn": _draw_sn, "agn": _draw_agn, "cv": _draw_cv,
              "varstar": _draw_varstar, "bogus": _draw_bogus}[cls]
    return drawer(index, cls, rng, t_centre)


def _sn_peak(rng: np.random.Generator, bright: bool) -> float:
    # Euclidean counts (N(<m) ~ 10**(0.6 m)): most sources lie near the faint end
    lo, hi = (14.0, BRIGHT_LIMIT) if bright else (BRIGHT_LIMIT, 20.3)
    return float(np.log10(rng.uniform(10 ** (0.6 * lo), 10 ** (0.6 * hi))) / 0.6)


def _draw_sn(index: int, cls: str, rng: np.random.Generator, t_centre: float) -> Source:
    bright = cls == "bright_sn"
    shares = np.array([s[1] if bright else s[2] for s in SN_SUBTYPES])
    name, _, _, abs_mag, rise, fall, colour = SN_SUBTYPES[rng.choice(3, p=shares / shares.sum())]
    peak = _sn_peak(rng, bright)
    c = rng.uniform(*colour)
    t_fall_r = rng.uniform(*fall)
    t_rise = rng.uniform(*rise)
    # peak magnitude is the brighter band; the other is offset by the colour
    peak_r, peak_g = (peak, peak + c) if c >= 0 else (peak - c, peak)
    lc = LightCurve("sn", t_peak=t_centre, peak_mag={G: peak_g, R: peak_r},
                    t_rise={G: t_rise, R: t_rise * 1.1}, t_fall={G: 0.7 * t_fall_r, R: t_fall_r})
    ra, dec, b = draw_position(rng, galactic=False)
    mu = peak - (abs_mag + rng.normal(0, 0.4))  # distance modulus
    distance_kpc = 10 ** (mu / 5 + 1) / 1e3
    host = None
    if rng.random() > 0.04:  # a few per cent are hostless (host below every catalogue)
        host_abs = rng.normal(-20.3, 1.1)
        r_eff = float(np.clip(206265 * rng.lognormal(np.log(3.0), 0.45) / distance_kpc, 0.4, 40.0))
        q, angle = rng.uniform(0.25, 1.0), rng.uniform(0, np.pi)
        # offset drawn from an exponential disc (scale r_eff / 1.68), projected onto the ellipse
        radius = rng.gamma(2.0, r_eff / 1.68) * 0.8
        phi = rng.uniform(0, 2 * np.pi)
        u, v = radius * np.cos(phi), radius * q * np.sin(phi)
        hx = -(u * np.cos(angle) - v * np.sin(angle))
        hy = -(u * np.sin(angle) + v * np.cos(angle))
        host = dict(x=hx, y=hy, mag_r=mu + host_abs, color=rng.normal(0.65, 0.2), n=rng.uniform(0.7, 4.0),
                    r_eff=r_eff, q=q, angle=angle, sgscore=galaxy_sgscore(rng, r_eff))
    scene = draw_scene(rng, n_stars=stars_per_field(b), host=host)
    params = {"subtype": name, "t_peak": t_centre, "t_rise": t_rise, "t_fall": t_fall_r, "color": c,
              "distance_mpc": distance_kpc / 1e3,
              "host_mag": host["mag_r"] if host else np.nan, "host_reff": host["r_eff"] if host else np.nan,
              "host_offset": float(np.hypot(host["x"], host["y"])) if host else np.nan}
    return Source(index, cls, name, ra, dec, lc, scene, t_centre - 8 * t_rise - 12,
                  t_centre + min(6 * t_fall_r, 250), peak, params=params)


def _draw_agn(index: int, cls: str, rng: np.random.Generator, t_centre: float) -> Source:
    ra, dec, b = draw_position(rng, galactic=False)
    host_mag = rng.uniform(15.5, 19.5)
    r_eff = float(rng.lognormal(np.log(2.0), 0.4))
    nucleus = host_mag + rng.uniform(0.3, 2.5)
    flare = float(np.clip(nucleus + rng.normal(0.8, 0.7), 16.8, 20.5))
    t_rise, t_fall = rng.uniform(8, 40), rng.uniform(25, 110)
    lc = LightCurve("agn", t_peak=t_centre, peak_mag={G: flare - 0.2, R: flare}, base_mag={G: nucleus + 0.3, R: nucleus},
                    t_rise={G: t_rise, R: t_rise}, t_fall={G: t_fall * 0.8, R: t_fall},
                    drw_tau=rng.uniform(40, 250), drw_sigma=rng.uniform(0.05, 0.2))
    host = dict(x=rng.normal(0, 0.08), y=rng.normal(0, 0.08), mag_r=host_mag, color=rng.normal(0.6, 0.2),
                n=rng.uniform(1.5, 4.0), r_eff=r_eff, q=rng.uniform(0.4, 1.0), angle=rng.uniform(0, np.pi),
                sgscore=galaxy_sgscore(rng, r_eff, nucleus=True))
    # the nucleus is a point source in the reference, exactly at the galaxy's centre
    centre = dict(mag_r=nucleus, color=0.3, sgscore=host["sgscore"])
    scene = draw_scene(rng, n_stars=stars_per_field(b), host=host, centre=centre)
    history = rng.uniform(0.1, 0.95)
    params = {"subtype": "AGN", "t_peak": t_centre, "t_rise": t_rise, "t_fall": t_fall, "host_mag": host_mag,
              "host_reff": r_eff, "nucleus_mag": nucleus}
    return Source(index, cls, "AGN", ra, dec, lc, scene, t_centre - 3.5 * t_rise, t_centre + 3 * t_fall,
                  min(flare - 0.2, flare), prior_ndet=int(np.clip(rng.lognormal(np.log(150), 0.9), 8, 3000)),
                  prior_first_jd=JD_ZTF_START + history * (t_centre - 3.5 * t_rise - JD_ZTF_START), params=params)


def _draw_cv(index: int, cls: str, rng: np.random.Generator, t_centre: float) -> Source:
    ra, dec, b = draw_position(rng, galactic=True)
    quiescent = rng.uniform(19.5, 23.0)
    peak = float(np.clip(quiescent - rng.uniform(3.0, 6.0), 13.5, 19.5))
    recurrence = rng.uniform(20, 150)
    n_out = int(rng.integers(1, 4))
    starts = tuple(t_centre + recurrence * np.arange(n_out) + rng.normal(0, 3, n_out))
    t_fall = rng.uniform(1.5, 4.5)
    lc = LightCurve("cv", t_peak=starts[0], peak_mag={G: peak - 0.1, R: peak}, base_mag={G: quiescent + 0.2, R: quiescent},
                    t_fall={G: t_fall, R: t_fall * 1.1}, outbursts=starts)
    centre = dict(mag_r=quiescent, color=0.2, sgscore=float(rng.uniform(0.5, 1.0)))
    scene = draw_scene(rng, n_stars=stars_per_field(b) * rng.uniform(1.5, 3.0), host=None, centre=centre)
    known = rng.random() < 0.7  # earlier outbursts already detected by ZTF
    params = {"subtype": "CV", "t_peak": starts[0], "quiescent_mag": quiescent, "recurrence": recurrence,
              "t_fall": t_fall, "n_outbursts": n_out}
    return Source(index, cls, "CV", ra, dec, lc, scene, starts[0] - 3, starts[-1] + 12 * t_fall, peak - 0.1,
                  prior_ndet=int(rng.integers(3, 250)) if known else 0,
                  prior_first_jd=JD_ZTF_START + rng.uniform(0, 0.9) * (starts[0] - JD_ZTF_START) if known else None,
                  params=params)


def _draw_varstar(index: int, cls: str, rng: np.random.Generator, t_centre: float) -> Source:
    ra, dec, b = draw_position(rng, galactic=True)
    mean = rng.uniform(13.5, 18.0)
    amplitude = rng.uniform(0.25, 0.9)
    lc = LightCurve("varstar", base_mag={G: mean + 0.6, R: mean}, period=float(10 ** rng.uniform(-0.4, 2.3)),
                    amplitude=amplitude, phase=rng.uniform(0, 2 * np.pi))
    centre = dict(mag_r=mean, color=0.6, sgscore=float(1 - rng.beta(1, 60)))
    scene = draw_scene(rng, n_stars=stars_per_field(b) * rng.uniform(1.0, 2.0), host=None, centre=centre)
    duration = rng.uniform(40, 160)
    peak = float(-2.5 * np.log10(10 ** (-0.4 * mean) * amplitude))
    params = {"subtype": "varstar", "mean_mag": mean, "period": lc.period, "amplitude": amplitude}
    return Source(index, cls, "varstar", ra, dec, lc, scene, t_centre, t_centre + duration, peak,
                  prior_ndet=int(rng.integers(50, 1500)),
                  prior_first_jd=JD_ZTF_START + rng.uniform(0, 0.3) * (t_centre - JD_ZTF_START), params=params)


def _draw_bogus(index: int, cls: str, rng: np.random.Generator, t_centre: float) -> Source:
    kind = "cosmic" if rng.random() < 0.5 else "residual"
    ra, dec, b = draw_position(rng, galactic=rng.random() < 0.4)
    centre = dict(mag_r=rng.uniform(11.5, 14.5), color=0.7, sgscore=0.99) if kind == "residual" else None
    scene = draw_scene(rng, n_stars=stars_per_field(b), host=None, centre=centre)
    peak = rng.uniform(16.5, 20.0)
    lc = LightCurve("bogus", t_peak=t_centre, peak_mag={G: peak, R: peak})
    params = {"subtype": "bogus", "artefact": kind, "t_peak": t_centre}
    return Source(index, cls, "bogus", ra, dec, lc, scene, t_centre, t_centre + rng.uniform(1, 12), peak,
                  bogus_kind=kind, prior_ndet=int(rng.integers(0, 4)) if kind == "residual" else 0,
                  prior_first_jd=JD_ZTF_START + 300 if kind == "residual" else None, params=params)
