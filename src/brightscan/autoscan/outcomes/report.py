"""Outcomes: autoscan's decisions against later classifications, per night, per week and for the period.

The rules (``docs/autoscan.md``, "Outcomes"):

- an object is **matched** to a classification by its ZTF ``objectId``; a classification that
  gives only an IAU name and a position is matched to the nearest object of the period within
  ``radius_arcsec`` (positions from the ``ra``/``dec`` features stored with the alerts);
- **bright** = classified SN-like with peak magnitude <= 18.5 (the BTS rule); objects with type
  "-" are *unclassified* (unknown); an object absent from a BTS or TNS file is not bright (those
  files list every classified object), an object absent from a plain file is unknown;
- **purity** = saved bright / saved with a known outcome; **completeness** = saved bright / bright
  objects saved in the period or seen at <= 18.5 mag in the feed during it (the survey's footprint
  as autoscan saw it, and the transients BTS would have acted on); bright objects of the file never
  seen in the feed are counted apart, never as misses; an object passed before the period is a
  decision of an earlier period and counts in no figure of this one;
- **delay** = pass time - BTS save time (days; negative: autoscan was earlier), where known;
- 95% intervals: the project's seeded bootstrap over objects (:func:`brightscan.metrics.bootstrap_source_intervals`);
- an object belongs to the night of its deciding alert when saved, else of its first alert at
  <= 18.5 mag.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from brightscan import metrics as M
from brightscan.autoscan.outcomes.classifications import BRIGHT_PEAK_MAG, Classification, ClassificationTable, RowError
from brightscan.autoscan.outcomes.decisions import ObjectDecision, read_decisions
from brightscan.autoscan.store import Store
from brightscan.times import jd_to_datetime

__all__ = ["Figures", "ObjectOutcome", "OutcomesReport", "compute_outcomes", "night_of", "week_of"]

#: Default match radius for classifications known only by position (arcsec).
DEFAULT_RADIUS_ARCSEC = 2.0
#: Formats whose files list every classified object, so an absent object is not bright.
_COMPLETE_FORMATS = ("bts", "tns")


@dataclass
class ObjectOutcome:
    """How one object turned out."""

    object_id: str
    outcome: str  # saved_bright | false_save | saved_unclassified | missed
    night: str  # UTC date (YYYY-MM-DD) of the deciding alert (saved) or first alert (missed)
    candid: int  # the deciding alert (saved) or the highest-scoring one (missed)
    jd: float
    score: float
    type: str | None  # the classification; None when unclassified or absent from the file
    name: str | None  # IAU name when the file gives one
    match: str  # "objectId", "position 0.8 arcsec" or "absent"
    bts_save_jd: float | None = None  # the humans' save time, where known
    delay_days: float | None = None  # pass - BTS save (negative: autoscan earlier)


@dataclass
class Figures:
    """Purity, completeness and delay of a group of objects, with 95% intervals."""

    n_saved: int  # objects the policy passed
    n_saved_bright: int
    n_false_saves: int
    n_saved_unclassified: int  # saved, outcome not known yet (left out of the purity)
    n_bright: int  # bright objects the feed delivered
    n_missed: int
    purity: float | None
    purity_ci: list[float | None]
    completeness: float | None
    completeness_ci: list[float | None]
    median_delay_days: float | None
    median_delay_days_ci: list[float | None]
    n_delays: int


@dataclass
class OutcomesReport:
    """The whole answer of ``autoscan outcomes`` (text, JSON and the page are views of it)."""

    since_jd: float | None
    until_jd: float | None
    nights: list[str]  # first and last night with alerts in the period
    classifications: dict[str, Any]  # file, format, rows, rejected rows (the first 20 reasons)
    radius_arcsec: float
    overall: Figures
    by_night: dict[str, Figures]
    by_week: dict[str, Figures]
    objects: list[ObjectOutcome]
    n_objects_seen: int  # objects with alerts in the period
    n_bright_not_in_feed: int  # bright objects of the file (by objectId) without alerts in the period
    n_position_unmatched: int  # bright position-only classifications with no object within the radius
    drift: dict[str, Any] | None = None  # per-night drift statistics, when the model recorded them

    def of(self, outcome: str) -> list[ObjectOutcome]:
        """The objects with this outcome, by night then objectId."""
        return sorted((o for o in self.objects if o.outcome == outcome), key=lambda o: (o.night, o.object_id))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as null)."""
        data = asdict(self)
        data["false_saves"] = [asdict(o) for o in self.of("false_save")]
        data["misses"] = [asdict(o) for o in self.of("missed")]
        return _nan_to_none(data)


def night_of(jd: float) -> str:
    """UTC date of a Julian date, ``YYYY-MM-DD`` (the night page's night)."""
    return jd_to_datetime(jd).strftime("%Y-%m-%d")


def week_of(night: str) -> str:
    """ISO week of a night, ``YYYY-Www``."""
    import datetime as dt

    year, week, _ = dt.date.fromisoformat(night).isocalendar()
    return f"{year}-W{week:02d}"


def compute_outcomes(store: Store, table: ClassificationTable, *, since_jd: float | None = None,
                     until_jd: float | None = None, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC,
                     bts_saves: dict[str, float] | None = None) -> OutcomesReport:
    """Match the database's decisions in ``[since_jd, until_jd)`` with ``table`` and measure them.

    Parameters
    ----------
    store : Store
        The autoscan database, opened read-only.
    table : ClassificationTable
        From :func:`~brightscan.autoscan.outcomes.classifications.read_classifications`.
    since_jd, until_jd : float, optional
        The period (alert Julian dates); unbounded when None.
    radius_arcsec : float
        Match radius for classifications known only by position.
    bts_saves : dict, optional
        ``objectId`` -> the human scanners' save JD, for the delay.

    Returns
    -------
    OutcomesReport
    """
    decisions = read_decisions(store, since_jd, until_jd, BRIGHT_PEAK_MAG)
    errors = list(table.errors)
    by_id, by_position = _index(table.rows, errors)
    matched = {oid: (c, "objectId") for oid, c in by_id.items() if oid in decisions}
    for oid, (row, sep) in _match_positions(decisions, by_position, radius_arcsec, set(matched)).items():
        matched[oid] = (row, f"position {sep:.1f} arcsec")
    used_lines = {c.line for c, _ in matched.values()}
    complete = table.format in _COMPLETE_FORMATS
    objects = [o for d in decisions.values()
               if (o := _outcome(d, matched.get(d.object_id), complete, bts_saves or {})) is not None]
    groups_night: dict[str, list[ObjectOutcome]] = defaultdict(list)
    groups_week: dict[str, list[ObjectOutcome]] = defaultdict(list)
    for o in objects:
        groups_night[o.night].append(o)
        groups_week[week_of(o.night)].append(o)
    seen_nights = sorted({night_of(d.first_jd) for d in decisions.values()})
    return OutcomesReport(
        since_jd=since_jd, until_jd=until_jd,
        nights=[seen_nights[0], seen_nights[-1]] if seen_nights else [],
        classifications={"path": table.path, "format": table.format, "rows": len(table.rows),
                         "rejected": len(errors), "rejected_first": [str(e) for e in errors[:20]]},
        radius_arcsec=radius_arcsec, overall=figures(objects),
        by_night={k: figures(v) for k, v in sorted(groups_night.items())},
        by_week={k: figures(v) for k, v in sorted(groups_week.items())},
        objects=sorted(objects, key=lambda o: (o.night, o.object_id)), n_objects_seen=len(decisions),
        n_bright_not_in_feed=sum(1 for oid, c in by_id.items() if c.bright and oid not in decisions),
        n_position_unmatched=sum(1 for c in by_position if c.bright and c.line not in used_lines),
    )


def _index(rows: list[Classification], errors: list[RowError]) -> tuple[dict[str, Classification], list[Classification]]:
    """Rows by objectId (a repeated objectId keeps its first row: the others become errors) and
    the rows known only by position."""
    by_id: dict[str, Classification] = {}
    by_position: list[Classification] = []
    for row in rows:
        if row.object_id is not None:
            if row.object_id in by_id:
                errors.append(RowError(row.line, f"{row.object_id} repeated (line {by_id[row.object_id].line} kept)"))
            else:
                by_id[row.object_id] = row
        elif row.ra is not None and row.dec is not None:
            by_position.append(row)
    return by_id, by_position


def _match_positions(decisions: dict[str, ObjectDecision], rows: list[Classification], radius_arcsec: float,
                     taken: set[str]) -> dict[str, tuple[Classification, float]]:
    """Nearest position-only classification within the radius of each object not matched by id;
    a classification goes to one object only (the nearest)."""
    if not rows or radius_arcsec <= 0:
        return {}
    order = np.argsort([r.dec for r in rows])
    decs = np.array([rows[i].dec for i in order], float)
    ras = np.array([rows[i].ra for i in order], float)
    radius = radius_arcsec / 3600.0
    best: dict[int, tuple[str, float]] = {}  # row index in order -> (objectId, separation arcsec)
    for d in decisions.values():
        if d.object_id in taken or d.ra is None or d.dec is None:
            continue
        lo, hi = np.searchsorted(decs, [d.dec - radius, d.dec + radius + 1e-12])
        if lo == hi:
            continue
        sep = _separation_deg(d.ra, d.dec, ras[lo:hi], decs[lo:hi]) * 3600.0
        k = int(np.argmin(sep))
        if sep[k] <= radius_arcsec and (lo + k not in best or sep[k] < best[lo + k][1]):
            best[lo + k] = (d.object_id, float(sep[k]))
    out: dict[str, tuple[Classification, float]] = {}
    for index, (oid, sep) in best.items():
        if oid not in out or sep < out[oid][1]:
            out[oid] = (rows[int(order[index])], sep)
    return out


def _separation_deg(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Great-circle separation (haversine, exact at small angles)."""
    r0, d0, r1, d1 = np.radians(ra0), np.radians(dec0), np.radians(ra), np.radians(dec)
    h = np.sin((d1 - d0) / 2) ** 2 + np.cos(d0) * np.cos(d1) * np.sin((r1 - r0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def _outcome(d: ObjectDecision, match: tuple[Classification, str] | None, complete: bool,
             bts_saves: dict[str, float]) -> ObjectOutcome | None:
    """The object's outcome, or None when it counts in no figure (not saved and not bright)."""
    row, how = match if match is not None else (None, "absent")
    bright = row.bright if row is not None else (False if complete else None)
    if d.passed_before:
        return None
    if not d.saved:
        if not bright or d.first_bright_jd is None:  # never at <= 18.5 mag in the period: not due yet
            return None
        return ObjectOutcome(d.object_id, "missed", night_of(d.first_bright_jd), d.best_candid, d.best_jd, d.best_score,
                             row.type, row.name, how, bts_saves.get(d.object_id))
    kind = {True: "saved_bright", False: "false_save", None: "saved_unclassified"}[bright]
    save = bts_saves.get(d.object_id)
    delay = d.pass_jd - save if (bright and save is not None and d.pass_jd is not None) else None
    return ObjectOutcome(d.object_id, kind, night_of(d.pass_jd), d.pass_candid, d.pass_jd,
                         d.pass_score if d.pass_score is not None else float("nan"),
                         None if row is None else row.type, None if row is None else row.name, how, save, delay)


def figures(objects: list[ObjectOutcome]) -> Figures:
    """Purity, completeness and median delay of ``objects`` with seeded bootstrap 95% intervals."""
    known = [o for o in objects if o.outcome != "saved_unclassified"]
    labels = [int(o.outcome in ("saved_bright", "missed")) for o in known]
    passed = [o.outcome in ("saved_bright", "false_save") for o in known]
    pass_jd = [o.jd if p else math.nan for o, p in zip(known, passed)]
    save_jd = [math.nan if o.bts_save_jd is None else o.bts_save_jd for o in known]
    point = M.source_metrics(labels, passed, pass_jd, save_jd)
    ci = M.bootstrap_source_intervals(labels, passed, pass_jd, save_jd, seed=0)
    count = {k: sum(1 for o in objects if o.outcome == k) for k in ("saved_bright", "false_save", "saved_unclassified", "missed")}
    return Figures(
        n_saved=count["saved_bright"] + count["false_save"] + count["saved_unclassified"],
        n_saved_bright=count["saved_bright"], n_false_saves=count["false_save"],
        n_saved_unclassified=count["saved_unclassified"], n_bright=count["saved_bright"] + count["missed"],
        n_missed=count["missed"], purity=_num(point["purity"]), purity_ci=_nums(ci["purity_ci"]),
        completeness=_num(point["completeness"]), completeness_ci=_nums(ci["completeness_ci"]),
        median_delay_days=_num(point["median_delay_days"]), median_delay_days_ci=_nums(ci["median_delay_days_ci"]),
        n_delays=int(point["n_delays"]))


def _num(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _nums(values: list[float]) -> list[float | None]:
    return [_num(v) for v in values]


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
