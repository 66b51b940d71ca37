"""Read-only queries over the autoscan database for the pages people look at: the night page
(``autoscan summary``) and the live status page (``autoscan serve``).

Every function takes an open connection and returns plain dicts and lists (JSON-ready), so the
HTML and JSON forms of a page show the same numbers. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from brightscan.autoscan.store import action_attempts, actions, alerts, rejections, sources
from brightscan.alerts.records import JD_RANGE
from brightscan.errors import InputError
from brightscan.times import jd_to_datetime, unix_to_jd

__all__ = ["latency_seconds", "night_bounds", "night_of_latest_alert", "night_view", "object_view",
           "status_view"]

FILTERS = {1: "g", 2: "r", 3: "i"}
_FACTS = ("ra", "dec", "ndethist", "age")  # features shown beside each saved object


def night_bounds(night: str) -> tuple[float, float]:
    """JD range ``[start, end)`` of a UTC date given as ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    try:
        day = dt.datetime.strptime(night.replace("-", ""), "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise InputError(f"--night must be YYYY-MM-DD or YYYYMMDD, got {night!r}") from None
    start = unix_to_jd(day.timestamp())
    return start, start + 1.0


def night_of_latest_alert(conn: sa.Connection) -> str | None:
    """UTC date (``YYYY-MM-DD``) of the most recent observation in the database (stored values
    outside the readers' physical range, from an older database, are left out, never a crash)."""
    jd = conn.execute(sa.select(sa.func.max(alerts.c.jd)).where(alerts.c.jd.between(*JD_RANGE))).scalar()
    if jd is None:
        return None
    return jd_to_datetime(jd).strftime("%Y-%m-%d")


def latency_seconds(conn: sa.Connection, object_ids: Sequence[str] | None = None) -> np.ndarray:
    """Seconds from arrival of the triggering input to the save's acknowledgement (done saves)."""
    query = (sa.select(actions.c.acked_at - actions.c.arrived_at)
             .where(actions.c.kind == "save", actions.c.state == "done", actions.c.arrived_at.is_not(None)))
    if object_ids is not None:
        query = query.where(actions.c.object_id.in_(list(object_ids)))
    return np.array([float(v) for v in conn.execute(query).scalars()], dtype=float)


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "max": float(values.max())}


def policy_threshold(policy: dict[str, Any] | None) -> float | None:
    """The score threshold of a stored policy (a search's chosen policy), if it has one."""
    if not policy:
        return None
    params = (policy.get("best") or {}).get("params") or policy.get("params") or {}
    value = params.get("threshold")
    return None if value is None else float(value)


def _features(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _actions_by_object(conn: sa.Connection, object_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {o: [] for o in object_ids}
    if not object_ids:
        return out
    rows = conn.execute(sa.select(actions.c.id, actions.c.kind, actions.c.object_id, actions.c.state,
                                  actions.c.attempts, actions.c.last_error, actions.c.acked_at,
                                  actions.c.arrived_at, actions.c.idempotency_key)
                        .where(actions.c.object_id.in_(list(object_ids))).order_by(actions.c.id)).mappings()
    for row in rows:
        out[row["object_id"]].append(dict(row))
    return out


def _saved(conn: sa.Connection, start: float, end: float, limit: int | None) -> list[dict[str, Any]]:
    """Objects whose policy passed on an alert of the night, with the deciding alert's facts."""
    query = (sa.select(sources.c.object_id, sources.c.n_alerts, sources.c.policy, sources.c.identified_candid,
                       sources.c.identified_jd, sources.c.identified_at, sources.c.saved_at,
                       sources.c.followup_state, alerts.c.magpsf, alerts.c.fid, alerts.c.score,
                       alerts.c.features, alerts.c.arrived_at)
             .join(alerts, alerts.c.candid == sources.c.identified_candid, isouter=True)
             .where(sources.c.identified_jd >= start, sources.c.identified_jd < end)
             .order_by(sources.c.identified_jd.desc()).limit(limit))
    saved = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        features = _features(item.pop("features"))
        item.update({k: features.get(k) for k in _FACTS}, filter=FILTERS.get(item["fid"], item["fid"]))
        item["latency_s"] = None if item["saved_at"] is None or item["arrived_at"] is None \
            else item["saved_at"] - item["arrived_at"]
        saved.append(item)
    return saved


def _near_misses(conn: sa.Connection, start: float, end: float, limit: int) -> list[dict[str, Any]]:
    """The night's highest-scoring objects that the policy did not pass."""
    best = sa.func.max(alerts.c.score).label("best_score")
    query = (sa.select(alerts.c.object_id, best, sa.func.count().label("alerts_tonight"),
                       sa.func.min(alerts.c.magpsf).label("brightest"), sources.c.n_alerts)
             .join(sources, sources.c.object_id == alerts.c.object_id)
             .where(alerts.c.jd >= start, alerts.c.jd < end, sources.c.policy_state != "passed")
             .group_by(alerts.c.object_id, sources.c.n_alerts).order_by(best.desc()).limit(limit))
    return [dict(r) for r in conn.execute(query).mappings()]


def _attention(conn: sa.Connection, object_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Failed, then pending actions (the ones an operator must look at)."""
    query = (sa.select(actions.c.id, actions.c.kind, actions.c.object_id, actions.c.state, actions.c.attempts,
                       actions.c.last_error, actions.c.next_attempt_at, actions.c.updated_at)
             .where(actions.c.state.in_(("failed", "pending")))
             .order_by(sa.case((actions.c.state == "failed", 0), else_=1), actions.c.updated_at.desc()))
    if object_ids is not None:
        query = query.where(actions.c.object_id.in_(list(object_ids)))
    return [dict(r) for r in conn.execute(query.limit(200)).mappings()]


def rate_limited(conn: sa.Connection, object_ids: Sequence[str] | None = None) -> int:
    """The 429 ("too many requests") answers SkyPortal gave our attempts (all, or these objects')."""
    query = (sa.select(sa.func.coalesce(sa.func.sum(action_attempts.c.rate_limited), 0))
             .select_from(action_attempts.join(actions, actions.c.id == action_attempts.c.action_id)))
    if object_ids is not None:
        query = query.where(actions.c.object_id.in_(list(object_ids)))
    return int(conn.execute(query).scalar() or 0)


def night_view(conn: sa.Connection, night: str, near_misses: int = 10) -> dict[str, Any]:
    """Everything the night page shows, for the alerts observed on ``night`` (UTC date)."""
    start, end = night_bounds(night)
    in_night = sa.and_(alerts.c.jd >= start, alerts.c.jd < end)
    scores = np.array(conn.execute(sa.select(alerts.c.score).where(in_night)).scalars().all(), float)
    saved = _saved(conn, start, end, None)
    ids = [s["object_id"] for s in saved]
    by_object = _actions_by_object(conn, ids)
    for item in saved:
        item["actions"] = by_object[item["object_id"]]
    latency = latency_seconds(conn, ids)
    states: dict[str, int] = {}
    for acts in by_object.values():
        for a in acts:
            states[a["state"]] = states.get(a["state"], 0) + 1
    return {
        "night": night, "n_alerts": int(scores.size), "scores": scores.tolist(),
        "n_rejections": int(conn.execute(sa.select(sa.func.count()).select_from(rejections)).scalar() or 0),
        "saved": saved, "actions_by_state": states, "attention": _attention(conn, ids),
        "rate_limited": rate_limited(conn, ids),
        "near_misses": _near_misses(conn, start, end, near_misses),
        "latency_s": _percentiles(latency), "latency_values": latency.tolist(),
        "threshold": next((t for t in (policy_threshold(s["policy"]) for s in saved) if t is not None), None),
    }


def object_view(conn: sa.Connection, object_id: str) -> dict[str, Any] | None:
    """One object: its state, every alert with its score, its actions and their attempts."""
    source = conn.execute(sa.select(sources).where(sources.c.object_id == object_id)).mappings().first()
    if source is None:
        return None
    history = [dict(r) for r in conn.execute(
        sa.select(alerts.c.candid, alerts.c.jd, alerts.c.magpsf, alerts.c.fid, alerts.c.score,
                  alerts.c.model_id, alerts.c.model_version)
        .where(alerts.c.object_id == object_id).order_by(alerts.c.jd)).mappings()]
    acts = _actions_by_object(conn, [object_id])[object_id]
    for action in acts:
        action["attempt_log"] = [dict(r) for r in conn.execute(
            sa.select(action_attempts.c.attempt, action_attempts.c.outcome, action_attempts.c.detail,
                      action_attempts.c.finished_at)
            .where(action_attempts.c.action_id == action["id"]).order_by(action_attempts.c.attempt)).mappings()]
    info = {k: v for k, v in dict(source).items() if k != "triplet"}
    return {"source": info, "alerts": history, "actions": acts, "has_triplet": source["triplet"] is not None}


def _last_error(conn: sa.Connection) -> dict[str, Any] | None:
    attempt = conn.execute(
        sa.select(action_attempts.c.detail, action_attempts.c.finished_at, actions.c.object_id, actions.c.kind)
        .join(actions, actions.c.id == action_attempts.c.action_id)
        .where(action_attempts.c.outcome != "done").order_by(action_attempts.c.finished_at.desc()).limit(1)
    ).mappings().first()
    rejection = conn.execute(sa.select(rejections.c.reason, rejections.c.created_at, rejections.c.object_id,
                                       rejections.c.stage).order_by(rejections.c.id.desc()).limit(1)).mappings().first()
    found = [({"what": f"{a['kind']} of {a['object_id']}", "detail": a["detail"], "at": a["finished_at"]})
             for a in [attempt] if a]
    found += [({"what": f"rejected alert of {r['object_id'] or '?'} ({r['stage']})", "detail": r["reason"],
                "at": r["created_at"]}) for r in [rejection] if r]
    return max(found, key=lambda e: e["at"]) if found else None


def status_view(conn: sa.Connection, now: float, window_s: float = 600.0) -> dict[str, Any]:
    """The live status: tonight's decisions and candidates, actions needing attention,
    throughput over the last ``window_s`` seconds (by store time), latency, the last error."""
    night = night_of_latest_alert(conn)
    stored_recent = int(conn.execute(sa.select(sa.func.count()).select_from(alerts)
                                     .where(alerts.c.stored_at >= now - window_s)).scalar() or 0)
    last_stored = conn.execute(sa.select(sa.func.max(alerts.c.stored_at))).scalar()
    view: dict[str, Any] = {
        "now": now, "night": night, "alerts_total": int(conn.execute(
            sa.select(sa.func.count()).select_from(alerts)).scalar() or 0),
        "throughput_per_min": stored_recent / (window_s / 60.0), "window_s": window_s,
        "last_stored_at": last_stored, "attention": _attention(conn), "last_error": _last_error(conn),
        "rate_limited": rate_limited(conn),
        "latency_s": _percentiles(latency_seconds(conn)),
        "decisions": [], "candidates": [], "n_alerts_tonight": 0,
    }
    if night is not None:
        start, end = night_bounds(night)
        view["decisions"] = _saved(conn, start, end, 50)
        view["candidates"] = _near_misses(conn, start, end, 20)
        view["n_alerts_tonight"] = int(conn.execute(sa.select(sa.func.count()).select_from(alerts)
                                                    .where(alerts.c.jd >= start, alerts.c.jd < end)).scalar() or 0)
    return view
