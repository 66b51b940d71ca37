"""One figure per function, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes numbers already computed by :mod:`brightscan.metrics`, writes one
PNG to ``path`` and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BTS_LIMIT = 18.5  # mag: alerts brighter than this trigger BTS spectroscopy (Figure 2 highlight)


def _figure(width: float = 6.0, height: float = 4.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path) -> Path:
    """ROC curves: ``{label: (fpr, tpr, auc)}``."""
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot()
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title="ROC (alerts)")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_outcomes_by_magnitude(outcomes: Mapping[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """Figure 2: stacked TP/FN/TN/FP bars per magnitude bin, with m < 18.5 highlighted."""
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    edges = np.asarray(outcomes["edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges) * 0.9
    bottom = np.zeros(len(centers))
    colours = {"tp": "#1b7837", "fn": "#a6dba0", "tn": "#2166ac", "fp": "#f4a582"}
    names = {"tp": "true positive", "fn": "false negative", "tn": "true negative", "fp": "false positive"}
    for key in ("tp", "fn", "tn", "fp"):
        counts = np.asarray(outcomes[key], dtype=float)
        ax.bar(centers, counts, width=width, bottom=bottom, color=colours[key], label=names[key])
        bottom += counts
    ax.axvspan(edges[0], BTS_LIMIT, color="gold", alpha=0.15, zorder=0, label=f"m < {BTS_LIMIT}")
    ax.set(xlabel="PSF magnitude", ylabel="alerts", title=title or "outcomes by magnitude (score >= 0.5)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_completeness_purity(by_peak: Mapping[str, Mapping[str, np.ndarray]],
                             overall: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Figure 3 (left): completeness (solid) and purity (dashed) against peak magnitude; thin lines: overall.

    ``by_peak`` and ``overall`` map a policy (or model) label to the output of
    :func:`~brightscan.metrics.metrics_by_peak` / :func:`~brightscan.metrics.source_metrics`.
    """
    fig = _figure(6.5, 4.5)
    ax = fig.add_subplot()
    single = len(by_peak) == 1  # one series: the paper's navy/orange; several: one colour each
    for i, (label, r) in enumerate(by_peak.items()):
        edges = np.asarray(r["edges"])
        centers = (edges[:-1] + edges[1:]) / 2
        c_comp, c_pur = ("navy", "darkorange") if single else (f"C{i}", f"C{i}")
        ax.plot(centers, r["completeness"], "-", marker="o", color=c_comp, label=f"{label} completeness")
        ax.plot(centers, r["purity"], "--", marker="s", color=c_pur, label=f"{label} purity")
        ax.axhline(overall[label]["completeness"], color=c_comp, lw=0.8, ls="-", alpha=0.4)
        ax.axhline(overall[label]["purity"], color=c_pur, lw=0.8, ls="--", alpha=0.4)
    ax.set(xlabel="peak magnitude", ylabel="fraction", ylim=(0, 1.05), title="sources: completeness and purity")
    ax.legend(fontsize="small", loc="lower left")
    return _save(fig, path)


def plot_delay_histogram(delays: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Figure 3 (right): policy minus scanner identification time (days), median marked."""
    fig = _figure(6.0, 4.5)
    ax = fig.add_subplot()
    finite = [np.asarray(d, float) for d in delays.values() if len(d)]
    lo, hi = (min(d.min() for d in finite), max(d.max() for d in finite)) if finite else (-1.0, 1.0)
    bins = np.linspace(min(lo, -1.0), max(hi, 1.0), 31)
    for label, d in delays.items():
        d = np.asarray(d, float)
        if d.size == 0:
            continue
        (patch,) = ax.hist(d, bins=bins, histtype="step", lw=1.5, label=f"{label} (median {np.median(d):.2f} d)")[2]
        ax.axvline(np.median(d), color=patch.get_edgecolor(), ls="--")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel="policy - scanner identification time (days)", ylabel="bright sources",
           title="identification delay (negative: earlier than scanners)")
    if finite:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no scanner save times", ha="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_reliability(curves: Mapping[str, Mapping[str, np.ndarray]], path: str | Path) -> Path:
    """Reliability diagram: observed frequency against mean score per bin, ``{label: bins}``."""
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
    for label, r in curves.items():
        used = np.asarray(r["count"]) > 0
        ax.plot(np.asarray(r["confidence"])[used], np.asarray(r["frequency"])[used], marker="o", label=label)
    ax.set(xlabel="mean score in bin", ylabel="fraction bright", xlim=(0, 1), ylim=(0, 1), title="reliability")
    ax.legend(fontsize="small", loc="upper left")
    return _save(fig, path)


def plot_frontier(frontier: Sequence[Mapping[str, Any]], chosen: Mapping[str, float] | None,
                  target: float, path: str | Path) -> Path:
    """Policy search frontier on the validation sources: purity against completeness."""
    fig = _figure(6.0, 4.5)
    ax = fig.add_subplot()
    comp = np.array([r["completeness"] for r in frontier], float)
    pur = np.array([r["purity"] for r in frontier], float)
    ax.plot(comp, pur, marker=".", label="frontier (validation)")
    ax.axvline(target, color="grey", ls="--", lw=0.8, label=f"target {target:.2f}")
    if chosen is not None:
        ax.plot([chosen["completeness"]], [chosen["purity"]], "r*", ms=14, label="chosen")
    ax.set(xlabel="completeness", ylabel="purity", title="policy search")
    ax.legend(fontsize="small")
    return _save(fig, path)
