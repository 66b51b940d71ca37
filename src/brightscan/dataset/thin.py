"""N_max thinning: keep at most the latest ``nmax`` alerts of each source.

The paper (Rehemtulla et al. 2023) limits every source of the *training* set to N_max alerts so
that long-lived sources do not dominate the loss; validation and test stay unthinned.
"""

from __future__ import annotations

import numpy as np

from brightscan.errors import ConfigError

__all__ = ["thin_latest"]


def thin_latest(object_ids: np.ndarray, jd: np.ndarray, nmax: int | None) -> np.ndarray:
    """Indices of the rows kept when each source keeps its ``nmax`` latest alerts (by ``jd``).

    Ties in ``jd`` are broken by row order (the later row is kept first), so the result is
    deterministic.

    Parameters
    ----------
    object_ids : array of str, shape (N,)
        Source of each row.
    jd : array of float, shape (N,)
        Time of each row.
    nmax : int or None
        Alerts kept per source; ``None`` keeps everything.

    Returns
    -------
    numpy.ndarray of int64
        Sorted row indices.
    """
    object_ids = np.asarray(object_ids)
    jd = np.asarray(jd, dtype=np.float64)
    if object_ids.shape != jd.shape or object_ids.ndim != 1:
        raise ValueError("object_ids and jd must be 1-d arrays of equal length")
    if nmax is None:
        return np.arange(len(jd), dtype=np.int64)
    if nmax < 1:
        raise ConfigError(f"nmax must be at least 1, not {nmax}")
    _, codes = np.unique(object_ids, return_inverse=True)
    rows = np.arange(len(jd))
    # Sort by source, then newest first (ties: later row first).
    order = np.lexsort((-rows, -jd, codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.arange(len(order)) - group_start
    return np.sort(order[rank < nmax]).astype(np.int64)
