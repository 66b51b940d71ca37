"""The outcomes page: how the saves turned out against later classifications, with plots.

Written by ``autoscan outcomes --html DIR`` (``index.html`` + PNGs), or served at ``/outcomes``
by ``autoscan serve --classifications FILE`` (the PNGs inline). Top to bottom: the period's
purity, completeness and delay cards; purity and completeness per night with their 95%
intervals; the scores of the deciding alerts by outcome; the table per night and week; the
false saves and the misses with their deciding alert.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from brightscan.autoscan.outcomes.report import OutcomesReport
from brightscan.evaluate.plots import new_figure

__all__ = ["outcomes_routes", "render_outcomes", "write_outcomes_page"]

log = logging.getLogger(__name__)

_OUTCOME_COLOURS = {"saved_bright": "#2e8b57", "false_save": "#c0392b", "saved_unclassified": "#999999",
                    "missed": "#e69f00"}
_OUTCOME_NAMES = {"saved_bright": "saved, bright", "false_save": "false save",
                  "saved_unclassified": "saved, not classified yet", "missed": "missed (best alert)"}


def _fig_nights(report: OutcomesReport) -> Any:
    """Purity and completeness per night, with their 95% bootstrap intervals."""
    fig, (ax,) = new_figure(6.4, 3.2, dpi=100, grid_lines=False)
    nights = list(report.by_night)
    x = np.arange(len(nights))
    for offset, key, colour in ((-0.08, "purity", "#1f5fa8"), (0.08, "completeness", "#2e8b57")):
        values = [getattr(f, key) for f in report.by_night.values()]
        cis = [getattr(f, f"{key}_ci") for f in report.by_night.values()]
        keep = [i for i, v in enumerate(values) if v is not None]
        y = np.array([values[i] for i in keep], float)
        lo = np.array([cis[i][0] if cis[i][0] is not None else values[i] for i in keep], float)
        hi = np.array([cis[i][1] if cis[i][1] is not None else values[i] for i in keep], float)
        ax.errorbar(x[keep] + offset, y, yerr=[y - lo, hi - y], fmt="o", ms=4, capsize=2, color=colour, label=key)
    ax.set(ylim=(-0.03, 1.03), ylabel="fraction (95% interval)")
    ax.set_xticks(x, nights, rotation=45 if len(nights) > 4 else 0, ha="right" if len(nights) > 4 else "center",
                  fontsize=7)
    if not nights:
        ax.text(0.5, 0.5, "no decisions in the period", ha="center", transform=ax.transAxes, color="grey")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(True, color="#e5e5e5", lw=0.6)
    return fig


def _fig_scores(report: OutcomesReport) -> Any:
    """Score of the deciding alert (saves) or best alert (misses), by outcome."""
    fig, (ax,) = new_figure(6.4, 3.0, dpi=100, grid_lines=False)
    bins = np.linspace(0, 1, 21)
    for outcome, colour in _OUTCOME_COLOURS.items():
        scores = [o.score for o in report.objects if o.outcome == outcome and np.isfinite(o.score)]
        if scores:
            ax.hist(scores, bins=bins, histtype="step", lw=1.6, color=colour,
                    label=f"{_OUTCOME_NAMES[outcome]} ({len(scores)})")
    if report.objects:
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no outcomes", ha="center", transform=ax.transAxes, color="grey")
    ax.set(xlabel="score", ylabel="objects")
    ax.grid(True, color="#e5e5e5", lw=0.6)
    return fig


_FIGURES = {"nights.png": _fig_nights, "scores.png": _fig_scores}


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_outcomes(report: OutcomesReport, images: dict[str, str]) -> str:
    """The page's HTML; ``images`` maps each figure's file name to its ``src`` (a file or a data URI)."""
    from brightscan.pages import render

    data = report.to_dict()
    data["false_saves"] = report.of("false_save")
    data["misses"] = report.of("missed")
    return render("outcomes.html", v=data, images=images)


def write_outcomes_page(report: OutcomesReport, out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` and its PNGs; return the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, make in _FIGURES.items():
        (out / name).write_bytes(_png(make(report)))
    page = out / "index.html"
    page.write_text(render_outcomes(report, {name: name for name in _FIGURES}), encoding="utf-8")
    log.info("outcomes page -> %s", page)
    return page


def outcomes_routes(store: Any, classifications: str | None, guard: Any) -> list[Any]:
    """The status app's ``/outcomes`` and ``/outcomes.json`` (none without a classification file).

    ``guard(request)`` answers the request itself (token check) or returns None to go on.
    """
    if classifications is None:
        return []
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    from brightscan.autoscan.outcomes import compute_outcomes, read_classifications
    from brightscan.pages import data_uri

    def outcomes(request: Any) -> Any:
        refused = guard(request)
        if refused is not None:
            return refused
        report = compute_outcomes(store, read_classifications(classifications))
        if request.url.path.endswith(".json"):
            return JSONResponse(report.to_dict())
        images = {name: data_uri(_png(make(report))) for name, make in _FIGURES.items()}
        return HTMLResponse(render_outcomes(report, images))

    return [Route("/outcomes", outcomes), Route("/outcomes.json", outcomes)]
