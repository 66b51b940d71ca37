"""Simulated BTS human scanners: when (if ever) they would have saved each source.

The model follows BTS practice as described by Perley et al. (2020) and the BTSbot paper:

* The team scans the candidate list once or twice a day, at fixed UT hours
  (``ScannerConfig.scan_hours_utc``; the second scan happens on a fraction
  ``second_scan_prob`` of days, the same days for every source).
* A source becomes *eligible* once it has ``n_bright_dets`` alert detections brighter than
  ``save_mag`` (default: two detections brighter than 19 mag).
* An eligible bright SN is overlooked entirely with probability ``miss_prob`` (3%; with the few
  bright SNe that never get two detections brighter than 19 mag, the saved sample is ~95%
  complete, like BTS's); otherwise at each scan where it is eligible it is saved with probability
  ``1 - hesitate_prob`` (scanners sometimes wait for another point).
* An eligible source of another class is saved by mistake with a per-class probability
  ``false_save_prob`` (dim SNe that brush 18.5-19 mag are the usual confusion; AGN and CVs are
  mostly recognised from their history), tuned so the saved sample is ~95% pure with the
  default class mix.
"""

from __future__ import annotations

import numpy as np

from brightscan.simulate.config import ScannerConfig


def make_scan_times(seed: int, jd0: float, n_days: int, config: ScannerConfig) -> np.ndarray:
    """Sorted JDs of every scan from ``jd0`` (0h UT of the first day) over ``n_days`` days."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 - 2,)))
    days = jd0 + np.arange(n_days, dtype=float)
    hours = sorted(config.scan_hours_utc)
    times = [days + hours[0] / 24.0]
    for h in hours[1:]:
        times.append((days + h / 24.0)[rng.random(n_days) < config.second_scan_prob])
    return np.sort(np.concatenate(times))


def save_time(
    cls: str, label: int, alert_jd: np.ndarray, alert_mag: np.ndarray, scans: np.ndarray,
    config: ScannerConfig, rng: np.random.Generator,
) -> float | None:
    """JD at which the scanners save the source, or ``None`` if they never do.

    Parameters
    ----------
    cls : str
        Simulator class of the source.
    label : int
        1 for a bright SN.
    alert_jd, alert_mag : ndarray
        Times and ``magpsf`` of the source's alerts, sorted by time.
    scans : ndarray
        Scan times from :func:`make_scan_times`.
    config : ScannerConfig
        Model parameters.
    rng : numpy.random.Generator
        The source's scanner stream.
    """
    miss = rng.random()
    bright = alert_jd[alert_mag < config.save_mag]
    if len(bright) < config.n_bright_dets:
        return None
    if label == 1:
        if miss < config.miss_prob:
            return None
    elif miss >= config.false_save_prob.get(cls, 0.0):
        return None
    eligible_from = bright[config.n_bright_dets - 1]
    for scan in scans[np.searchsorted(scans, eligible_from):]:
        if rng.random() >= config.hesitate_prob:
            return float(scan)
    return None
