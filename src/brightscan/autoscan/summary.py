"""The night's summary: one HTML page with PNGs, read from the autoscan database.

Sections: counts (including the 429 "too many requests" answers SkyPortal gave); every source that
passed the policy that night with its triplet (the alert that triggered the decision) and its
score history; the actions and their outcomes (id, attempts, 429s, errors); the latency from an
input's arrival to the sink acknowledging the save.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from brightscan.autoscan.store import action_attempts, actions, alerts, open_store, rejections, sources
from brightscan.errors import InputError

__all__ = ["latency_seconds", "night_bounds", "write_summary"]

log = logging.getLogger(__name__)

_MAX_SOURCE_FIGURES = 100  # keep the page loadable on a busy night


def night_bounds(night: str) -> tuple[float, float]:
    """JD range ``[start, end)`` of a UTC date given as ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    try:
        day = dt.datetime.strptime(night.replace("-", ""), "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise InputError(f"--night must be YYYY-MM-DD or YYYYMMDD, got {night!r}") from None
    start = day.timestamp() / 86400.0 + 2440587.5
    return start, start + 1.0


def latency_seconds(conn: sa.engine.Connection, object_ids: list[str] | None = None) -> np.ndarray:
    """Seconds from arrival of the triggering input to the save's acknowledgement (done saves)."""
    query = (sa.select(actions.c.acked_at - actions.c.arrived_at)
             .where(actions.c.kind == "save", actions.c.state == "done", actions.c.arrived_at.is_not(None)))
    if object_ids is not None:
        query = query.where(actions.c.object_id.in_(object_ids))
    return np.array([float(v) for v in conn.execute(query).scalars()], dtype=float)


def _fig_source(row: dict[str, Any], history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(12, 3), gridspec_kw={"width_ratios": [1, 1, 1, 2]})
    if row["triplet"]:
        triplet = np.frombuffer(row["triplet"], dtype=np.float16).reshape(63, 63, 3).astype(np.float32)
        for i, name in enumerate(("science", "reference", "difference")):
            axes[i].imshow(triplet[:, :, i], cmap="gray", origin="lower")
            axes[i].set_title(name, fontsize=9)
    for ax in axes[:3]:
        ax.set_xticks([]), ax.set_yticks([])
    jd = np.array([h["jd"] for h in history])
    axes[3].plot(jd - jd.min(), [h["score"] for h in history], "o-", ms=3)
    axes[3].axvline(row["identified_jd"] - jd.min(), color="C3", ls="--", label="policy passed")
    axes[3].set(xlabel="days since first alert", ylabel="score", ylim=(-0.02, 1.02))
    axes[3].legend(fontsize=8)
    fig.suptitle(row["object_id"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _fig_hist(values: np.ndarray, xlabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    if values.size:
        ax.hist(values, bins=30)
    ax.set(xlabel=xlabel, ylabel="count")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _utc(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S")


def write_summary(db_url: str, night: str, out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` (+ PNGs) for the alerts of ``night``; return its path."""
    start, end = night_bounds(night)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            in_night = alerts.c.jd.between(start, end)
            scores = np.array(conn.execute(sa.select(alerts.c.score).where(in_night)).scalars().all(), float)
            n_rej = conn.execute(sa.select(sa.func.count()).select_from(rejections)).scalar()
            passed = conn.execute(sa.select(sources).where(sources.c.identified_jd.between(start, end))
                                  .order_by(sources.c.identified_jd)).mappings().all()
            ids = [r["object_id"] for r in passed]
            limited = (sa.select(action_attempts.c.action_id,
                                 sa.func.sum(action_attempts.c.rate_limited).label("n429"))
                       .group_by(action_attempts.c.action_id).subquery())
            acts = conn.execute(sa.select(actions, sa.func.coalesce(limited.c.n429, 0).label("n429"))
                                .outerjoin(limited, limited.c.action_id == actions.c.id)
                                .where(actions.c.object_id.in_(ids))
                                .order_by(actions.c.id)).mappings().all()
            latency = latency_seconds(conn, ids)
            figures = []
            for row in passed[:_MAX_SOURCE_FIGURES]:
                history = conn.execute(sa.select(alerts.c.jd, alerts.c.score)
                                       .where(alerts.c.object_id == row["object_id"])
                                       .order_by(alerts.c.jd)).mappings().all()
                name = f"source_{row['object_id']}.png"
                _fig_source(dict(row), [dict(h) for h in history], out / name)
                figures.append(name)
    finally:
        store.dispose()
    _fig_hist(scores, "score", out / "scores.png")
    _fig_hist(latency, "arrival → save acknowledged (s)", out / "latency.png")
    pct = (lambda q: f"{np.percentile(latency, q):.2f} s" if latency.size else "n/a")
    parts = [
        f"<h1>autoscan night {html.escape(night)}</h1>",
        _table(["alerts scored", "rejections (all time)", "sources passed", "latency p50", "latency p99",
                "429 answers (rate limited)"],
               [[scores.size, n_rej, len(passed), pct(50), pct(99), sum(int(a["n429"]) for a in acts)]]),
        "<h2>scores</h2><img src='scores.png'><img src='latency.png'>",
        "<h2>decisions</h2>",
        _table(["objectId", "candid", "decided (UTC)", "saved (UTC)", "follow-up", "alerts", "last score"],
               [[r["object_id"], r["identified_candid"], _utc(r["identified_at"]), _utc(r["saved_at"]),
                 r["followup_state"] or "", r["n_alerts"], f"{r['last_score']:.3f}"] for r in passed]),
        "<h2>actions</h2>",
        _table(["id", "key", "state", "attempts", "429s", "acknowledged (UTC)", "last error"],
               [[a["id"], a["idempotency_key"], a["state"], a["attempts"], a["n429"], _utc(a["acked_at"]),
                 a["last_error"] or ""] for a in acts]),
        "<h2>sources</h2>", *[f"<img src='{html.escape(f)}'><br>" for f in figures],
    ]
    page = out / "index.html"
    style = "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'>{style}</head><body>"
                    + "\n".join(parts) + "</body></html>\n", encoding="utf-8")
    log.info("summary of %s: %d sources passed -> %s", night, len(passed), page)
    return page
