"""N_max thinning: keep at most ``nmax`` alerts of each source of the training split.

The paper (Rehemtulla et al. 2023) limits every source of the *training* set to N_max alerts so
that long-lived sources do not dominate the loss; validation and test stay unthinned. Two rules:

- ``"latest"`` (:func:`thin_latest`): every source keeps its latest ``nmax`` alerts. For a
  supernova with more than ``nmax`` alerts this drops the rise and the peak, the alerts that
  matter most.
- ``"btsbot"`` (:func:`thin_btsbot`): what BTSbot's own code does (its
  ``train_val_test_split.create_subset``): supernovae and other transients (BTS's "trues",
  "dims" and "rejects") keep a seeded *random* ``nmax`` of their alerts; variables and artefacts
  (its "vars" and "junk": here the classes in :data:`LATEST_CLASSES`) keep their latest ``nmax``.
"""

from __future__ import annotations

import numpy as np

from brightscan.errors import ConfigError

__all__ = ["LATEST_CLASSES", "THINNING_MODES", "thin_btsbot", "thin_latest", "thin_rows"]

#: Thinning rules a dataset build can use (recorded in the dataset card as ``build.thinning``).
THINNING_MODES = ("latest", "btsbot")
#: Classes (labels CSV ``class``) that keep their latest alerts under "btsbot": BTSbot's
#: variables and junk. The simulator writes these names; any other class is thinned at random.
LATEST_CLASSES = frozenset({"AGN", "CV", "varstar", "bogus"})


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
    if _keeps_everything(nmax):
        return np.arange(len(jd), dtype=np.int64)
    _, codes = np.unique(object_ids, return_inverse=True)
    return _keep_first(codes, -jd, nmax)  # newest first (ties: later row first)


def _keep_first(codes: np.ndarray, key: np.ndarray, nmax: int) -> np.ndarray:
    """Sorted rows whose rank by ``key`` (ascending; ties: later row first) within their source
    is below ``nmax``."""
    rows = np.arange(len(codes))
    order = np.lexsort((-rows, key, codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.arange(len(order)) - group_start
    return np.sort(order[rank < nmax]).astype(np.int64)


def thin_btsbot(object_ids: np.ndarray, jd: np.ndarray, classes: np.ndarray, nmax: int | None, *,
                seed: int) -> np.ndarray:
    """Indices of the rows kept under BTSbot's rule: a seeded random ``nmax`` of each source's
    alerts, except the latest ``nmax`` for sources whose class is in :data:`LATEST_CLASSES`.

    Parameters
    ----------
    object_ids, jd, classes : arrays, shape (N,)
        Source, time and class of each row (all rows of a source share its class).
    nmax : int or None
        Alerts kept per source; ``None`` keeps everything.
    seed : int
        Seed of the random choice (the same rows and seed keep the same alerts).

    Returns
    -------
    numpy.ndarray of int64
        Sorted row indices.
    """
    object_ids, classes = np.asarray(object_ids), np.asarray(classes, dtype=object)
    jd = np.asarray(jd, dtype=np.float64)
    if not (object_ids.shape == jd.shape == classes.shape) or object_ids.ndim != 1:
        raise ValueError("object_ids, jd and classes must be 1-d arrays of equal length")
    if _keeps_everything(nmax):
        return np.arange(len(jd), dtype=np.int64)
    _, codes = np.unique(object_ids, return_inverse=True)
    latest = np.isin(classes, list(LATEST_CLASSES))
    random_key = np.random.default_rng(seed).random(len(jd))
    # latest rows rank by newest first; the others by a random key (a source has one class)
    key = np.where(latest, -jd, random_key)
    return _keep_first(codes, key, nmax)


def thin_rows(mode: str, object_ids: np.ndarray, jd: np.ndarray, classes: np.ndarray | None,
              nmax: int | None, *, seed: int = 0) -> np.ndarray:
    """Thin with the rule named ``mode`` (one of :data:`THINNING_MODES`); sorted row indices."""
    if mode == "latest":
        return thin_latest(object_ids, jd, nmax)
    if mode == "btsbot":
        if classes is None:
            classes = np.full(len(jd), "", dtype=object)
        return thin_btsbot(object_ids, jd, classes, nmax, seed=seed)
    raise ConfigError(f"thinning must be one of {THINNING_MODES}, not {mode!r}")


def _keeps_everything(nmax: int | None) -> bool:
    """True when there is no N_max (every alert kept); a limit below 1 is refused."""
    if nmax is None:
        return True
    if nmax < 1:
        raise ConfigError(f"nmax must be at least 1, not {nmax}")
    return False
