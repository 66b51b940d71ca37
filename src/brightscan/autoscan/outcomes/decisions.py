"""What autoscan decided, read from its database (never written): one record per object seen in a period.

For every object with an alert in ``[since, until)``: its first alert in the period, its first
alert at or brighter than BTS's 18.5 mag, the alert with the highest score (the closest a missed
object came), its position (the ``ra``/``dec`` features of that alert, when the feature set has
them) and, when the policy passed it inside the period, the deciding alert
(``identified_candid``) with its score; or that it was passed before the period.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from brightscan.autoscan.store import Store, alerts, sources

__all__ = ["ObjectDecision", "read_decisions"]

_CHUNK = 500  # object ids per IN (...) query


@dataclass
class ObjectDecision:
    """One object as autoscan saw it in the period."""

    object_id: str  # ZTF objectId
    first_jd: float  # its first alert in the period
    n_alerts: int  # its alerts in the period
    best_candid: int  # the highest-scoring alert in the period
    best_jd: float
    best_score: float
    first_bright_jd: float | None = None  # first alert in the period with magpsf <= bright_mag
    ra: float | None = None  # degrees, from the best alert's features (None when not stored)
    dec: float | None = None
    saved: bool = False  # the policy passed it inside the period
    pass_candid: int | None = None  # the deciding alert
    pass_jd: float | None = None
    pass_score: float | None = None
    passed_before: bool = False  # the policy passed it before the period (a decision of an earlier period)


def read_decisions(store: Store, since_jd: float | None = None, until_jd: float | None = None,
                   bright_mag: float = 18.5) -> dict[str, ObjectDecision]:
    """Objects with an alert in ``[since_jd, until_jd)`` (None: unbounded) and their decisions.

    Parameters
    ----------
    store : Store
        An opened database (``open_readonly``).
    since_jd, until_jd : float, optional
        The period, as Julian dates of the alerts.
    bright_mag : float
        ``first_bright_jd`` is the first alert at or brighter than this.

    Returns
    -------
    dict
        ``objectId`` -> :class:`ObjectDecision`.
    """
    where = []
    if since_jd is not None:
        where.append(alerts.c.jd >= since_jd)
    if until_jd is not None:
        where.append(alerts.c.jd < until_jd)
    out: dict[str, ObjectDecision] = {}
    query = (sa.select(alerts.c.object_id, alerts.c.candid, alerts.c.jd, alerts.c.score, alerts.c.magpsf)
             .where(*where).order_by(alerts.c.object_id, alerts.c.jd, alerts.c.candid))
    with store.engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(query):
            obj = out.get(row.object_id)
            bright = row.magpsf is not None and row.magpsf <= bright_mag
            if obj is None:
                out[row.object_id] = ObjectDecision(row.object_id, row.jd, 1, row.candid, row.jd, row.score,
                                                    row.jd if bright else None)
                continue
            obj.n_alerts += 1
            if bright and obj.first_bright_jd is None:
                obj.first_bright_jd = row.jd
            if row.score > obj.best_score:
                obj.best_candid, obj.best_jd, obj.best_score = row.candid, row.jd, row.score
        _add_positions(conn, out)
        _add_passes(conn, out, since_jd, until_jd)
    return out


def _add_positions(conn: sa.Connection, objects: dict[str, ObjectDecision]) -> None:
    """``ra``/``dec`` of each object's best alert, from the features stored with it."""
    candids = [o.best_candid for o in objects.values()]
    by_candid = {o.best_candid: o for o in objects.values()}
    for i in range(0, len(candids), _CHUNK):
        query = sa.select(alerts.c.candid, alerts.c.features).where(alerts.c.candid.in_(candids[i:i + _CHUNK]))
        for candid, features in conn.execute(query):
            values = json.loads(features) if isinstance(features, str) else (features or {})
            obj = by_candid[candid]
            obj.ra, obj.dec = _finite(values.get("ra")), _finite(values.get("dec"))


def _add_passes(conn: sa.Connection, objects: dict[str, ObjectDecision], since_jd: float | None,
                until_jd: float | None) -> None:
    """The deciding alert of each object the policy passed inside the period."""
    ids = sorted(objects)
    for i in range(0, len(ids), _CHUNK):
        query = (sa.select(sources.c.object_id, sources.c.identified_candid, sources.c.identified_jd, alerts.c.score)
                 .select_from(sources.outerjoin(alerts, alerts.c.candid == sources.c.identified_candid))
                 .where(sources.c.object_id.in_(ids[i:i + _CHUNK]), sources.c.policy_state == "passed"))
        for object_id, candid, jd, score in conn.execute(query):
            obj = objects[object_id]
            if jd is not None and since_jd is not None and jd < since_jd:
                obj.passed_before = True
            if jd is None or (since_jd is not None and jd < since_jd) or (until_jd is not None and jd >= until_jd):
                continue
            obj.saved, obj.pass_candid, obj.pass_jd = True, candid, float(jd)
            obj.pass_score = None if score is None else float(score)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None
