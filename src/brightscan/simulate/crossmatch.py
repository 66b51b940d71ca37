"""Catalogue fields of a candidate, computed from the same scene as the images.

* Pan-STARRS1 (``distpsnr1..3``, ``sgscore1..3``, ``s[griz]mag1..3``, ``objectidps1..3``,
  ``nmtchps``): the three catalogued objects (``r < 22.5``) nearest to the candidate within 30",
  ``-999`` where there are fewer, as in ZTF packets.
* Nearest source in the ZTF reference image (``distnr``, ``magnr``, ``sigmagnr``, ``chinr``,
  ``sharpnr``, ``ranr``, ``decnr``): objects with ``r < 21``; extended objects have large ``chinr``
  and ``sharpnr``, point sources ``chinr ~ 1``, ``sharpnr ~ 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brightscan.simulate.scene import GALAXY, Scene

PS1_LIMIT = 22.5  # r-band depth of the PS1 catalogue used by ZTF
REF_LIMIT = 21.0  # depth of the ZTF reference-image source catalogue
MATCH_RADIUS = 30.0  # arcsec
MISSING = -999.0


@dataclass(frozen=True)
class Catalogues:
    """Per-source catalogue matches; distances are recomputed per alert with centroid noise."""

    ps1_x: np.ndarray  # arcsec offsets of PS1 objects, nearest first
    ps1_y: np.ndarray
    ps1_rows: list[dict[str, float]]  # sgscore, magnitudes and ids of those objects
    nmtchps: int  # PS1 objects within 30"
    ref: dict[str, float]  # nearest reference-image source (fixed per source)
    ref_xy: tuple[float, float]  # its offset in arcsec (or MISSING)


def build_catalogues(scene: Scene, rng: np.random.Generator, ra: float, dec: float) -> Catalogues:
    """Derive the PS1 and reference-image matches of a source from its scene."""
    dist = np.hypot(scene.x, scene.y)
    in_ps1 = (scene.mag_r < PS1_LIMIT) & (dist < MATCH_RADIUS)
    order = np.flatnonzero(in_ps1)[np.argsort(dist[in_ps1], kind="stable")][:3]
    rows = []
    for i in order:
        mags = {band: scene.mag_r[i] + shift for band, shift in
                (("g", scene.color[i]), ("r", 0.0), ("i", -0.35 * scene.color[i]), ("z", -0.5 * scene.color[i]))}
        # PS1 ids encode position like the real ones (declination zone, then RA)
        objid = int((dec + 180.0 + scene.y[i] / 3600) * 600) * 10**12 + int((ra % 360) * 1e9 / 360) * 1000 + int(rng.integers(1000))
        row = {f"s{band}mag": float(m) if m < 23.3 else MISSING for band, m in mags.items()}
        row.update(sgscore=float(scene.sgscore[i]), objectidps=objid)
        rows.append(row)
    ref, ref_xy = _nearest_reference(scene, dist, rng, ra, dec)
    return Catalogues(scene.x[order], scene.y[order], rows, int(in_ps1.sum()), ref, ref_xy)


def _nearest_reference(scene: Scene, dist: np.ndarray, rng: np.random.Generator, ra: float, dec: float):
    visible = np.flatnonzero((scene.mag_r < REF_LIMIT) & (dist < MATCH_RADIUS))
    if len(visible) == 0:
        return {"distnr": MISSING, "magnr": MISSING, "sigmagnr": MISSING, "chinr": MISSING,
                "sharpnr": MISSING, "ranr": ra, "decnr": dec}, (MISSING, MISSING)
    i = visible[np.argmin(dist[visible])]
    if scene.kind[i] == GALAXY:
        # a PSF fit to an extended object: catches part of the light, fits badly
        size = scene.r_eff[i]
        magnr = scene.mag_r[i] + 0.4 + 0.5 * np.log10(1 + size)
        chinr = 1.0 + size * rng.uniform(0.6, 1.6)
        sharpnr = min(0.05 + 0.06 * size + rng.normal(0, 0.03), 0.9)
    else:
        magnr = scene.mag_r[i] + rng.normal(0, 0.03)
        chinr = rng.lognormal(np.log(0.9), 0.35)
        sharpnr = rng.normal(0.0, 0.04)
    ref = {
        "magnr": float(magnr), "sigmagnr": float(0.01 + 0.05 * 10 ** (0.4 * (magnr - 20))),
        "chinr": float(chinr), "sharpnr": float(sharpnr),
        "ranr": ra + scene.x[i] / 3600 / max(np.cos(np.radians(dec)), 1e-3), "decnr": dec + scene.y[i] / 3600,
    }
    return ref, (float(scene.x[i]), float(scene.y[i]))


def match_fields(cat: Catalogues, dx: float, dy: float) -> dict[str, float | int]:
    """Catalogue fields of one detection whose centroid is offset by ``(dx, dy)`` arcsec."""
    out: dict[str, float | int] = {"nmtchps": cat.nmtchps}
    for k in range(3):
        n = k + 1
        if k < len(cat.ps1_rows):
            row = cat.ps1_rows[k]
            out[f"distpsnr{n}"] = float(np.hypot(cat.ps1_x[k] - dx, cat.ps1_y[k] - dy))
            out[f"sgscore{n}"] = row["sgscore"]
            out[f"objectidps{n}"] = row["objectidps"]
            for band in "griz":
                out[f"s{band}mag{n}"] = row[f"s{band}mag"]
        else:
            out[f"distpsnr{n}"] = MISSING
            out[f"sgscore{n}"] = MISSING
            out[f"objectidps{n}"] = -999
            for band in "griz":
                out[f"s{band}mag{n}"] = MISSING
    out.update(cat.ref)
    if cat.ref_xy[0] != MISSING:
        out["distnr"] = float(np.hypot(cat.ref_xy[0] - dx, cat.ref_xy[1] - dy))
    return out
