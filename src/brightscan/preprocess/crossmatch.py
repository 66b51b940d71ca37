"""A user's star/galaxy catalogue, cross-matched by position (Rubin packets carry no such score).

ZTF packets carry PS1's star/galaxy scores (``sgscore1``, ``distpsnr1``); Rubin's have had none
since schema 8.0, and brokers cross-match a catalogue themselves. :class:`StarGalaxyCatalog`
takes any table of ``ra``, ``dec`` (degrees) and a score in [0, 1] (1 = star), and gives each alert
the score of its nearest catalogue source within ``radius`` arcsec, and the distance. With no
source that close the alert gets ``(no_match_score, radius)``: "nothing seen near it" is a fact the
model can learn from, as ZTF's models learn from PS1's ``-999`` distances.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from brightscan.errors import ConfigError

__all__ = ["StarGalaxyCatalog"]


class StarGalaxyCatalog:
    """Nearest-source lookup in a star/galaxy catalogue (a k-d tree on unit vectors).

    Parameters
    ----------
    ra, dec : array-like
        Positions in degrees.
    score : array-like
        Star/galaxy score of each source, 1 for a star, 0 for a galaxy.
    radius : float
        Match radius in arcsec.
    no_match_score : float
        The score given when no source lies within ``radius``.
    """

    def __init__(self, ra: np.ndarray, dec: np.ndarray, score: np.ndarray, *, radius: float = 5.0,
                 no_match_score: float = 0.5) -> None:
        from scipy.spatial import cKDTree

        ra, dec, score = (np.asarray(a, dtype=np.float64) for a in (ra, dec, score))
        if not (ra.shape == dec.shape == score.shape) or ra.ndim != 1 or not len(ra):
            raise ConfigError("a star/galaxy catalogue needs equal, non-empty ra, dec and score columns")
        if not (np.isfinite(ra).all() and np.isfinite(dec).all() and np.isfinite(score).all()):
            raise ConfigError("a star/galaxy catalogue holds non-finite ra, dec or score values")
        if radius <= 0:
            raise ConfigError("the cross-match radius must be positive")
        self.radius = float(radius)
        self.no_match_score = float(no_match_score)
        self.score_ = score
        self.tree_ = cKDTree(_unit_vectors(ra, dec))

    @classmethod
    def from_file(cls, path: str | Path, *, score_column: str = "sgscore", radius: float = 5.0) -> StarGalaxyCatalog:
        """Read ``ra``, ``dec`` and ``score_column`` from a Parquet or CSV file."""
        import pandas as pd

        path = Path(path)
        try:
            table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read star/galaxy catalogue {path}: {exc}") from None
        missing = [c for c in ("ra", "dec", score_column) if c not in table.columns]
        if missing:
            raise ConfigError(f"star/galaxy catalogue {path} lacks column(s) {', '.join(missing)}")
        return cls(table["ra"].to_numpy(), table["dec"].to_numpy(), table[score_column].to_numpy(), radius=radius)

    def nearest(self, ra: float, dec: float) -> tuple[float, float]:
        """``(score, distance in arcsec)`` of the nearest source within the radius, else the defaults."""
        chord = 2 * math.sin(math.radians(self.radius / 3600) / 2)
        distance, index = self.tree_.query(_unit_vectors(np.array([ra]), np.array([dec]))[0],
                                           distance_upper_bound=chord)
        if not math.isfinite(distance):
            return self.no_match_score, self.radius
        arcsec = math.degrees(2 * math.asin(min(distance / 2, 1.0))) * 3600
        return float(self.score_[index]), arcsec


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
