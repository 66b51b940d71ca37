"""Drift per night: do the night's inputs and scores look like the data the model was chosen on?

For the alerts observed on one UTC night (``alerts.jd``), the features stored with each alert
(``alerts.features``: exactly what the model was given) and the scores are compared with the
model's reference (:mod:`brightscan.model.reference`, the validation split at training time):
population stability index and Kolmogorov-Smirnov statistic per feature and for the scores. A
column beyond ``[drift] psi_max`` or ``ks_max`` is *flagged*, and so is the night.

Read-only; the memory a night costs is bounded by ``[drift] max_alerts`` (a bigger night is read
as an even sample of alert ids). Used by the status page, ``/metrics`` and ``autoscan outcomes``::

    report = night_drift(store, read_reference(model_dir), "2025-11-21")
    report.flagged  # e.g. ["fwhm"]
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from brightscan.autoscan.config import DriftConfig
from brightscan.autoscan.pages.views import night_bounds, night_of_latest_alert
from brightscan.autoscan.store import Store, alerts
from brightscan.model.reference import SCORE, Reference, ks_statistic, psi

__all__ = ["ColumnDrift", "DriftMonitor", "DriftReport", "night_drift"]


@dataclass(frozen=True)
class ColumnDrift:
    """One feature's (or the scores') comparison with the reference."""

    name: str  # feature name, or "score"
    psi: float  # population stability index (NaN: no finite value tonight)
    ks: float  # Kolmogorov-Smirnov statistic at the reference's percentiles
    n: int  # finite values tonight
    flagged: bool  # beyond psi_max or ks_max


@dataclass(frozen=True)
class DriftReport:
    """The drift of one night."""

    night: str  # UTC date YYYY-MM-DD
    n_alerts: int  # alerts observed that night
    n_compared: int  # of those, compared (all, or an even sample of max_alerts)
    columns: list[ColumnDrift] = field(default_factory=list)
    skipped: str | None = None  # why the night was not judged (no reference, too few alerts)

    @property
    def flagged(self) -> list[str]:
        """Names of the columns beyond a threshold (empty when the night passes or was skipped)."""
        return [c.name for c in self.columns if c.flagged]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN written as None)."""
        columns = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(c).items()}
                   for c in self.columns]
        return {"night": self.night, "n_alerts": self.n_alerts, "n_compared": self.n_compared,
                "flagged": self.flagged, "skipped": self.skipped, "columns": columns}


def _connection(source: Store | sa.Connection) -> Any:
    return source.engine.connect() if isinstance(source, Store) else _Borrowed(source)


class _Borrowed:
    """A caller's connection used as a context manager without closing it."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


def _night_values(conn: sa.Connection, night: str, names: list[str], max_alerts: int) -> tuple[int, dict[str, np.ndarray]]:
    """The night's alert count, and each named feature's and the scores' values (a sample if big)."""
    start, end = night_bounds(night)
    in_night = sa.and_(alerts.c.jd >= start, alerts.c.jd < end)
    n = int(conn.execute(sa.select(sa.func.count()).select_from(alerts).where(in_night)).scalar() or 0)
    query = sa.select(alerts.c.features, alerts.c.score).where(in_night)
    if n > max_alerts:  # an even, deterministic sample by alert id
        query = query.where(alerts.c.id % math.ceil(n / max_alerts) == 0)
    values = {name: [] for name in [*names, SCORE]}
    for features, score in conn.execute(query.execution_options(yield_per=5000)):
        features = json.loads(features) if isinstance(features, str) else (features or {})
        for name in names:
            value = features.get(name)
            values[name].append(value if isinstance(value, (int, float)) else math.nan)
        values[SCORE].append(score)
    return n, {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}


def night_drift(source: Store | sa.Connection, reference: Reference | None, night: str,
                config: DriftConfig | None = None) -> DriftReport:
    """Compare the alerts of ``night`` with ``reference``.

    Parameters
    ----------
    source : Store or Connection
        The autoscan database (read only).
    reference : Reference or None
        The model's reference (:func:`~brightscan.model.reference.read_reference`); ``None``
        gives a report with ``skipped`` saying the reference is missing.
    night : str
        UTC date, ``YYYY-MM-DD`` or ``YYYYMMDD``.
    config : DriftConfig, optional
        Thresholds and limits (default: :class:`DriftConfig`'s).

    Returns
    -------
    DriftReport
        Per-column PSI and KS, and ``flagged``.
    """
    config = config or DriftConfig()
    night = f"{night[:4]}-{night[4:6]}-{night[6:]}" if len(night) == 8 and night.isdigit() else night
    if reference is None:
        return DriftReport(night, 0, 0, skipped="the model has no reference distribution "
                           "(trained before brightscan recorded one, or imported): drift not checked")
    names = [n for n in reference.features if n not in config.ignore]
    with _connection(source) as conn:
        n, values = _night_values(conn, night, names, config.max_alerts)
    compared = int(values[SCORE].size)
    if n < config.min_alerts:
        return DriftReport(night, n, compared, skipped=f"{n} alerts, fewer than [drift] min_alerts = {config.min_alerts}")
    columns = []
    for name in [*names, SCORE]:
        ref = reference.columns[name]
        p, k = psi(ref, values[name]), ks_statistic(ref, values[name])
        flagged = bool((p > config.psi_max) or (k > config.ks_max))  # NaN compares False: not flagged
        columns.append(ColumnDrift(name, p, k, int(np.isfinite(values[name]).sum()), flagged))
    return DriftReport(night, n, compared, columns)


class DriftMonitor:
    """The last nights' drift, for the pages and ``/metrics``: a past night's report is kept
    until its alert count changes, so a page reload does not re-read every night."""

    def __init__(self, reference: Reference | None, config: DriftConfig | None = None) -> None:
        self.reference = reference
        self.config = config or DriftConfig()
        self._cache: dict[str, tuple[int, DriftReport]] = {}

    def recent(self, conn: sa.Connection) -> list[DriftReport]:
        """Reports of the nights with alerts among the last ``config.nights`` (newest first)."""
        latest = night_of_latest_alert(conn)
        if latest is None:
            return []
        end = night_bounds(latest)[1]
        starts = [end - 1 - offset for offset in range(self.config.nights)]
        # every night's alert count in one pass over the table (jd is not indexed)
        counts = conn.execute(sa.select(*[
            sa.func.coalesce(sa.func.sum(sa.case((sa.and_(alerts.c.jd >= s, alerts.c.jd < s + 1), 1), else_=0)), 0)
            for s in starts]).where(alerts.c.jd >= starts[-1], alerts.c.jd < end)).one()
        reports = []
        for day_start, count in zip(starts, counts):
            count = int(count)
            if count == 0:
                continue
            night = _night_name(day_start)
            cached = self._cache.get(night)
            if cached is None or cached[0] != count:
                cached = (count, night_drift(conn, self.reference, night, self.config))
                self._cache[night] = cached
            reports.append(cached[1])
        return reports


def _night_name(jd_start: float) -> str:
    from brightscan.times import jd_to_datetime

    return jd_to_datetime(jd_start + 0.5).strftime("%Y-%m-%d")
