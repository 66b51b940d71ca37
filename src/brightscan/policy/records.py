"""Records a policy reads: one scored alert, and one source's scored history.

A policy sees a source only through a jd-sorted sequence of :class:`ScoredAlert`; the same record
is built by the evaluation (from a dataset split) and by autoscan (from the live stream), so a
policy behaves identically offline and in real time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ScoredAlert:
    """One alert of a source with its model score.

    Parameters
    ----------
    candid : int
        ZTF candidate id of the alert.
    jd : float
        Julian date of the observation.
    score : float
        Model score in [0, 1] (probability of "bright supernova").
    magpsf : float
        PSF magnitude of the alert.
    peakmag_so_far : float, optional
        Brightest magnitude of the source up to this alert (the ``peakmag_so_far`` feature, which
        also counts detections that were not alerts). When absent, policies use the minimum
        ``magpsf`` over the history they are given.
    age : float, optional
        Days since the source's first detection (the ``age`` feature). When absent, policies use
        ``jd`` minus the first ``jd`` of the history.
    ndethist : int, optional
        Number of detections so far (ZTF ``ndethist``). When absent, policies count the alerts of
        the history up to this one.
    """

    candid: int  # ZTF candidate id
    jd: float  # observation time (Julian date)
    score: float  # model score in [0, 1]
    magpsf: float  # PSF magnitude of this alert
    peakmag_so_far: float | None = None  # brightest magnitude so far (feature), None = from history
    age: float | None = None  # days since first detection (feature), None = from history
    ndethist: int | None = None  # detections so far (ZTF field), None = count of alerts so far


@dataclass(frozen=True)
class ObjectHistory:
    """One source: its label, its jd-sorted scored alerts, and when human scanners saved it.

    Parameters
    ----------
    object_id : str
        ZTF ``objectId``.
    label : int
        1 for a bright supernova (the class a policy should save), else 0.
    alerts : tuple of ScoredAlert
        The source's alerts sorted by ``jd``.
    save_jd : float, optional
        Time the scanners saved the source (for the identification delay); None when unknown or
        never saved.
    peak_mag : float, optional
        Observed peak magnitude of the source (for completeness/purity against peak magnitude);
        None means the brightest ``magpsf`` of its alerts.
    """

    object_id: str  # ZTF objectId
    label: int  # 1 = bright supernova
    alerts: tuple[ScoredAlert, ...]  # jd-sorted
    save_jd: float | None = None  # scanner save time, None = unknown / never saved
    peak_mag: float | None = None  # observed peak magnitude, None = min magpsf of the alerts

    @property
    def observed_peak(self) -> float:
        """Observed peak magnitude (``peak_mag`` or the brightest alert)."""
        if self.peak_mag is not None:
            return float(self.peak_mag)
        return min(a.magpsf for a in self.alerts) if self.alerts else float("nan")


def sort_history(alerts: Sequence[ScoredAlert]) -> tuple[ScoredAlert, ...]:
    """Return the alerts sorted by ``jd`` (ties by ``candid``), as policies expect."""
    return tuple(sorted(alerts, key=lambda a: (a.jd, a.candid)))
