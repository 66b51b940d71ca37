"""One call behind ``autoscan outcomes``: read the files, open the database read-only, compute."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from brightscan.autoscan.outcomes.classifications import read_classifications, read_save_times
from brightscan.autoscan.outcomes.report import OutcomesReport, compute_outcomes
from brightscan.autoscan.store import open_readonly
from brightscan.errors import InputError
from brightscan.times import unix_to_jd

__all__ = ["run_outcomes"]

log = logging.getLogger(__name__)


def run_outcomes(db_url: str, classifications: str | Path, *, fmt: str = "auto", since: str | None = None,
                 until: str | None = None, radius_arcsec: float = 2.0, saves: str | Path | None = None,
                 reference: Any = None, drift_config: Any = None) -> OutcomesReport:
    """Outcomes of the database at ``db_url`` against the classification file.

    Parameters
    ----------
    db_url : str
        The autoscan database (opened read-only).
    classifications : path
        BTS explorer, TNS public objects or plain CSV.
    fmt : {"auto", "bts", "tns", "plain"}
    since, until : str, optional
        Period of the alerts: ISO 8601 (UTC when no zone), a JD, ``now`` or ``-7d``.
    radius_arcsec : float
        Match radius for classifications known only by position.
    saves : path, optional
        Human scanners' save times (``objectId, save_jd``), for the delay.
    reference : Reference, optional
        The model's reference distribution (:func:`~brightscan.model.reference.read_reference`):
        each night of the report then carries its drift (:func:`~brightscan.autoscan.drift.night_drift`).
    drift_config : DriftConfig, optional
        Thresholds for the drift marks (default: :class:`~brightscan.autoscan.config.DriftConfig`'s).
    """
    since_s = until_s = None
    if since is not None or until is not None:  # the runner module imports the scorer: only when needed
        from brightscan.autoscan.write.runner import parse_time

        since_s, until_s = parse_time(since), parse_time(until)
    if since_s is not None and until_s is not None and until_s <= since_s:
        raise InputError(f"--until {until!r} is not after --since {since!r}")
    table = read_classifications(classifications, fmt)
    for error in table.errors[:20]:
        log.warning("%s: %s", table.path, error)
    bts_saves = None
    if saves is not None:
        bts_saves, save_errors = read_save_times(saves)
        for error in save_errors[:20]:
            log.warning("%s: %s", saves, error)
    store = open_readonly(db_url)
    try:
        report = compute_outcomes(store, table, since_jd=None if since_s is None else unix_to_jd(since_s),
                                  until_jd=None if until_s is None else unix_to_jd(until_s),
                                  radius_arcsec=radius_arcsec, bts_saves=bts_saves)
        if reference is not None:
            from brightscan.autoscan.drift import night_drift

            report.drift = _drift_by_night(store, report.nights, reference, drift_config)
    finally:
        store.dispose()
    return report


def _drift_by_night(store: Any, nights: list[str], reference: Any, config: Any) -> dict[str, Any]:
    """Each night with alerts from the first to the last of the period: its drift report."""
    import datetime as dt

    from brightscan.autoscan.drift import night_drift

    if not nights:
        return {}
    day, last = dt.date.fromisoformat(nights[0]), dt.date.fromisoformat(nights[-1])
    out = {}
    while day <= last:
        report = night_drift(store, reference, day.isoformat(), config)
        if report.n_alerts:
            out[report.night] = report.to_dict()
        day += dt.timedelta(days=1)
    return out
