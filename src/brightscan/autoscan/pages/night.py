"""The night page: one HTML file and its PNGs, read (never written) from the autoscan database.

Top to bottom: the night's counts; failed and pending actions, in colour; a sortable table of the
saved objects (observation time of the deciding alert, magnitude, filter, position, detections,
age, latency), each linking to its card below; per object, the deciding alert's triplet, the light
curve with the score history under it, the actions with their state and a link to the object on
the configured SkyPortal; the near-misses (highest-scoring sources not saved); the score
histogram with the policy's threshold, and the latency histogram.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from brightscan.autoscan.store import open_readonly, sources
from brightscan.evaluate.plots import new_figure
from brightscan.autoscan.pages.views import FILTERS, latency_seconds, night_bounds, night_view, object_view

__all__ = ["latency_seconds", "night_bounds", "write_summary"]

log = logging.getLogger(__name__)

_MAX_OBJECT_FIGURES = 100  # keep the page loadable on a busy night
_COLOURS = {1: "#2e8b57", 2: "#c0392b", 3: "#7d3c98"}  # ZTF g, r, i


def _fig_object(history: list[dict[str, Any]], decided_jd: float | None, threshold: float | None,
                path: Path) -> None:
    """Light curve (magnitude by filter) with the score history under it, on one time axis."""
    fig, (mag_ax, score_ax) = new_figure(6.4, 3.6, rows=2, dpi=100, grid_lines=False, sharex=True, height_ratios=[3, 2])
    jd = np.array([h["jd"] for h in history], float)
    t0 = float(jd.min())
    for fid in sorted({h["fid"] for h in history}, key=lambda f: (f is None, f)):
        sel = [h for h in history if h["fid"] == fid]
        mag_ax.plot([h["jd"] - t0 for h in sel], [h["magpsf"] for h in sel], "o", ms=4,
                    color=_COLOURS.get(fid, "grey"), label=f"ZTF {FILTERS.get(fid, fid)}")
    mag_ax.invert_yaxis()
    mag_ax.set_ylabel("magpsf")
    mag_ax.legend(fontsize=7, loc="best")
    score_ax.plot(jd - t0, [h["score"] for h in history], "o-", ms=3, color="#1f5fa8")
    score_ax.set(ylabel="score", ylim=(-0.03, 1.03), xlabel="days since the first alert in the database")
    if threshold is not None:
        score_ax.axhline(threshold, color="grey", ls=":", lw=1)
    for ax in (mag_ax, score_ax):
        ax.grid(True, color="#e5e5e5", lw=0.6)
        if decided_jd is not None:
            ax.axvline(decided_jd - t0, color="#b8322a", ls="--", lw=1)
    fig.savefig(path)


def _fig_hist(values: np.ndarray, xlabel: str, path: Path, threshold: float | None = None,
              bins: Any = 30) -> None:
    fig, (ax,) = new_figure(5.2, 3.0, dpi=100, grid_lines=False)
    ax.hist(values, bins=bins, color="#7b9cc4")
    if threshold is not None:
        ax.axvline(threshold, color="#b8322a", ls="--", label=f"policy threshold {threshold:.2f}")
        ax.legend(fontsize=8)
    if not values.size:
        ax.text(0.5, 0.5, "nothing tonight", ha="center", transform=ax.transAxes, color="grey")
    ax.set(xlabel=xlabel, ylabel="count")
    ax.grid(True, color="#e5e5e5", lw=0.6)
    fig.savefig(path)


def _pictures(store: Any, view: dict[str, Any], out: Path) -> None:
    """Write each saved object's triplet and light-curve PNGs; note their names in ``view``."""
    import sqlalchemy as sa

    from brightscan.pages import triplet_png

    with store.engine.connect() as conn:
        for item in view["saved"][:_MAX_OBJECT_FIGURES]:
            oid = item["object_id"]
            detail = object_view(conn, oid)
            item["figure"] = f"source_{_file_stem(oid)}.png"
            _fig_object(detail["alerts"], item["identified_jd"], view["threshold"], out / item["figure"])
            blob = conn.execute(sa.select(sources.c.triplet).where(sources.c.object_id == oid)).scalar()
            if blob:
                triplet = np.frombuffer(blob, dtype=np.float16).reshape(_side(blob), _side(blob), 3).astype(np.float32)
                item["triplet"] = f"triplet_{_file_stem(oid)}.png"
                (out / item["triplet"]).write_bytes(triplet_png(triplet))


def write_summary(db_url: str, night: str, out_dir: str | Path, skyportal_url: str | None = None) -> Path:
    """Write ``out_dir/index.html`` (+ PNGs) for the alerts of ``night``; return its path.

    Parameters
    ----------
    db_url : str
        The autoscan database (opened read-only; it must exist).
    night : str
        UTC date of the observations, ``YYYY-MM-DD`` or ``YYYYMMDD``.
    out_dir : path
        Created if needed.
    skyportal_url : str, optional
        Base URL of the SkyPortal/Fritz the objects link to (``URL/source/<objectId>``).
    """
    from brightscan.pages import render

    night_bounds(night)  # a malformed night fails before anything is written
    store = open_readonly(db_url)
    out = Path(out_dir)
    try:
        with store.engine.connect() as conn:
            view = night_view(conn, night)
        out.mkdir(parents=True, exist_ok=True)
        _pictures(store, view, out)
    finally:
        store.dispose()
    _fig_hist(np.array(view["scores"]), "score of the night's alerts", out / "scores.png",
              threshold=view["threshold"], bins=np.linspace(0, 1, 41))
    _fig_hist(np.array(view["latency_values"]), "arrival → save acknowledged (s)", out / "latency.png")
    page = out / "index.html"
    page.write_text(render("night.html", v=view, anchor=lambda oid: f"#{oid}", skyportal=(skyportal_url or "").rstrip("/") or None,
                           db=_safe_url(db_url)), encoding="utf-8")
    log.info("summary of %s: %d sources passed -> %s", night, len(view["saved"]), page)
    return page


def _safe_url(url: str) -> str:
    from brightscan.autoscan.secrets import mask_url

    return mask_url(url)


def _file_stem(object_id: str) -> str:
    """A file name part for an objectId: ZTF's ids as they are; any other (a '/', '..', spaces)
    made safe, with a short hash so two ids never share a file."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", object_id).lstrip(".")
    if safe == object_id:
        return safe
    return f"{safe}-{hashlib.sha256(object_id.encode()).hexdigest()[:8]}"


def _side(blob: bytes) -> int:
    # a square float16 triplet: 63 px for ZTF models, the model's size (48) for Rubin ones
    return int(round((len(blob) // 6) ** 0.5))
