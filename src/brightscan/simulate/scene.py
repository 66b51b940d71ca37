"""The static sky around a source: host galaxy, field stars, background galaxies.

Positions are in arcseconds relative to the transient (the stamp centre); magnitudes are r band
with a g-r colour per object. The same list is rendered into the images
(:mod:`brightscan.simulate.images`) and cross-matched into the Pan-STARRS and reference-catalogue
fields (:mod:`brightscan.simulate.crossmatch`), so the two always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STAR, GALAXY = 0, 1

#: Half-width of the region populated with objects (arcsec): the stamp plus a margin.
FIELD_HALF = 48.0


@dataclass(frozen=True)
class Scene:
    """Objects around a source; every array has one entry per object."""

    x: np.ndarray  # arcsec east offset from the transient
    y: np.ndarray  # arcsec north offset from the transient
    mag_r: np.ndarray  # r-band magnitude of the whole object
    color: np.ndarray  # g - r colour
    kind: np.ndarray  # STAR or GALAXY
    sersic_n: np.ndarray  # Sersic index (galaxies)
    r_eff: np.ndarray  # half-light radius in arcsec (galaxies)
    axis_ratio: np.ndarray  # minor/major axis ratio (galaxies)
    angle: np.ndarray  # position angle in radians (galaxies)
    sgscore: np.ndarray  # Pan-STARRS star/galaxy score (1 = star)
    host: int  # index of the host galaxy (-1 when none)

    def mag(self, fid: int) -> np.ndarray:
        """Magnitudes in band ``fid`` (1 = g, 2 = r)."""
        return self.mag_r + (self.color if fid == 1 else 0.0)


def _star_mags(rng: np.random.Generator, n: int, bright: float = 13.0, faint: float = 22.8) -> np.ndarray:
    # cumulative counts rising as 10**(0.3 m): many faint stars, few bright ones
    u = rng.uniform(10 ** (0.3 * bright), 10 ** (0.3 * faint), n)
    return np.log10(u) / 0.3


def _stars_sgscore(rng: np.random.Generator, mags: np.ndarray) -> np.ndarray:
    # faint stars are ambiguous in PS1, bright ones are confidently stellar
    confident = 1.0 - rng.beta(1.0, 40.0, len(mags))
    ambiguous = rng.uniform(0.45, 1.0, len(mags))
    return np.where(mags < 20.5, confident, ambiguous)


def galaxy_sgscore(rng: np.random.Generator, r_eff: float, nucleus: bool = False) -> float:
    """PS1 star/galaxy score of a galaxy: low, higher for compact or nucleated ones."""
    base = rng.beta(1.3, 12.0)
    if r_eff < 1.2:
        base += rng.uniform(0.1, 0.4)
    if nucleus:
        base += rng.uniform(0.0, 0.5)
    return float(min(base, 0.99))


def draw_scene(
    rng: np.random.Generator,
    *,
    n_stars: float,
    host: dict[str, float] | None,
    centre: dict[str, float] | None = None,
) -> Scene:
    """Draw a scene.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source's random stream.
    n_stars : float
        Mean number of field stars within the populated square (set by Galactic latitude).
    host : dict or None
        Host galaxy: ``x, y, mag_r, color, n, r_eff, q, angle, sgscore``.
    centre : dict or None
        A point source exactly at the transient (``mag_r, color, sgscore``): a CV's quiescent
        counterpart or a variable star.
    """
    rows: list[tuple[float, ...]] = []
    host_index = -1
    if host is not None:
        host_index = 0
        rows.append((host["x"], host["y"], host["mag_r"], host["color"], GALAXY, host["n"],
                     host["r_eff"], host["q"], host["angle"], host["sgscore"]))
    if centre is not None:
        rows.append((0.0, 0.0, centre["mag_r"], centre["color"], STAR, 0, 0, 1, 0, centre["sgscore"]))
    n = rng.poisson(n_stars)
    mags = _star_mags(rng, n)
    xy = rng.uniform(-FIELD_HALF, FIELD_HALF, (n, 2))
    for (x, y), m, sg, c in zip(xy, mags, _stars_sgscore(rng, mags), rng.normal(0.7, 0.35, n)):
        rows.append((x, y, m, c, STAR, 0, 0, 1, 0, sg))
    for _ in range(rng.poisson(4.0)):  # faint background galaxies
        r_eff = rng.lognormal(np.log(1.2), 0.4)
        rows.append((*rng.uniform(-FIELD_HALF, FIELD_HALF, 2), rng.uniform(19.0, 23.0), rng.normal(0.8, 0.2),
                     GALAXY, rng.uniform(0.8, 4.0), r_eff, rng.uniform(0.3, 1.0), rng.uniform(0, np.pi),
                     galaxy_sgscore(rng, r_eff)))
    cols = np.array(rows, dtype=float).reshape(-1, 10).T
    return Scene(
        x=cols[0], y=cols[1], mag_r=cols[2], color=cols[3], kind=cols[4].astype(int), sersic_n=cols[5],
        r_eff=cols[6], axis_ratio=cols[7], angle=cols[8], sgscore=cols[9], host=host_index,
    )
