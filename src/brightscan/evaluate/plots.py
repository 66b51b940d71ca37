"""One figure per function, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function takes numbers already computed by :mod:`brightscan.metrics`, writes one
PNG to ``path`` and returns the path. Where several series share axes, each gets its own colour,
marker and line style, and lines that coincide are nudged apart, so no policy hides another.
Arrays named ``<metric>_ci`` (shape ``(n, 2)``: 95% interval per point) are drawn as bands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brightscan.pages import triplet_png  # noqa: F401 - the report's triplets, shared with the night page

import numpy as np

BTS_LIMIT = 18.5  # mag: alerts brighter than this trigger BTS spectroscopy (Figure 2 highlight)
DPI = 110
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
STYLES = ("-", "--", "-.", ":")


def new_figure(width: float = 6.0, height: float = 4.5, rows: int = 1, *, dpi: int = DPI,
               grid_lines: bool = True, **grid: Any) -> tuple[Any, Any]:
    """A matplotlib figure drawn off-screen (no pyplot state) and its ``rows`` axes, one above the
    other (``grid``: ``sharex``, ``height_ratios``, ...), with light grid lines unless told not to.
    The one figure helper of the reports and the autoscan summary pages."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, squeeze=False, **grid)[:, 0] if rows > 1 else [fig.add_subplot()]
    if grid_lines:
        for ax in axes:
            ax.grid(True, color="#e5e5e5", lw=0.6)
            ax.set_axisbelow(True)
    return fig, axes


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _band(ax: Any, x: np.ndarray, values: Mapping[str, Any], key: str, colour: str) -> None:
    ci = values.get(f"{key}_ci")
    if ci is not None:
        ci = np.asarray(ci, dtype=float)
        ax.fill_between(x, ci[:, 0], ci[:, 1], color=colour, alpha=0.15, lw=0)


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path) -> Path:
    """ROC curves: ``{label: (fpr, tpr, auc)}``."""
    fig, (ax,) = new_figure(5.2, 4.8)
    for i, (label, (fpr, tpr, auc)) in enumerate(curves.items()):
        ax.plot(fpr, tpr, ls=STYLES[i % len(STYLES)], lw=1.8, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title="ROC of the alerts")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def plot_outcomes_by_magnitude(outcomes: Mapping[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """Figure 2: stacked TP/FN/TN/FP bars per magnitude bin, with m < 18.5 highlighted."""
    fig, (ax,) = new_figure(6.8, 4.4)
    edges = np.asarray(outcomes["edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges) * 0.9
    bottom = np.zeros(len(centers))
    colours = {"tp": "#1b7837", "fn": "#a6dba0", "tn": "#2166ac", "fp": "#f4a582"}
    names = {"tp": "true positive", "fn": "false negative", "tn": "true negative", "fp": "false positive"}
    for key in ("tp", "fn", "tn", "fp"):
        counts = np.asarray(outcomes[key], dtype=float)
        ax.bar(centers, counts, width=width, bottom=bottom, color=colours[key], label=names[key])
        bottom += counts
    ax.axvspan(edges[0], BTS_LIMIT, color="gold", alpha=0.15, zorder=0, label=f"m < {BTS_LIMIT} (BTS)")
    ax.set(xlabel="PSF magnitude of the alert", ylabel="alerts", title=title or "alerts by magnitude (score >= 0.5)")
    ax.legend(fontsize="small", ncols=2)
    return _save(fig, path)


def plot_completeness_purity(by_peak: Mapping[str, Mapping[str, np.ndarray]],
                             overall: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Figure 3 (left): completeness and purity against peak magnitude, one panel each, every
    policy in its own colour and marker (nudged sideways so coinciding curves stay visible);
    the bottom panel counts each policy's false positives per bin over all sources (grey).

    ``by_peak`` and ``overall`` map a policy (or model) label to the output of
    :func:`~brightscan.metrics.metrics_by_peak` / :func:`~brightscan.metrics.source_metrics`.
    """
    fig, axes = new_figure(7.0, 8.4, rows=3, sharex=True, height_ratios=[3, 3, 2.2])
    n = max(len(by_peak), 1)
    first = next(iter(by_peak.values()))
    edges = np.asarray(first["edges"], float)
    step = float(np.min(np.diff(edges))) if edges.size > 1 else 0.5
    centers = (edges[:-1] + edges[1:]) / 2
    for i, (label, r) in enumerate(by_peak.items()):
        x = centers + (i - (n - 1) / 2) * step * 0.5 / n
        style = dict(color=f"C{i}", marker=MARKERS[i % len(MARKERS)], ls=STYLES[i % len(STYLES)], ms=5, lw=1.4)
        total = overall.get(label, {})
        for ax, key in zip(axes[:2], ("completeness", "purity")):
            _band(ax, x, r, key, f"C{i}")
            value = total.get(key)
            tag = "–" if value is None or not np.isfinite(value) else f"{value:.2f}"
            ax.plot(x, np.asarray(r[key], float), label=f"{label} (all: {tag})", **style)
    axes[0].set(ylabel="completeness", ylim=(-0.03, 1.05), title="sources by peak magnitude")
    axes[1].set(ylabel="purity", ylim=(-0.03, 1.05))
    for ax in axes[:2]:
        ax.axvline(BTS_LIMIT, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize="x-small", loc="lower left", ncols=2)
    n_all = np.asarray(first.get("n_sources", first["n_bright"]), float)
    axes[2].bar(centers, n_all, width=step * 0.9, color="#e3e3e3", label="all sources")
    for i, (label, r) in enumerate(by_peak.items()):
        hits = np.nan_to_num(np.asarray(r["completeness"], float)) * np.asarray(r["n_bright"], float)
        false_pos = np.asarray(r["n_passed"], float) - np.round(hits)
        x = centers + (i - (n - 1) / 2) * step * 0.5 / n
        axes[2].plot(x, false_pos, color=f"C{i}", marker=MARKERS[i % len(MARKERS)], ls=STYLES[i % len(STYLES)],
                     ms=4, lw=1.2, label=label)
    axes[2].set(xlabel="peak magnitude of the source", ylabel="false positives")
    axes[2].legend(fontsize="x-small", loc="upper left", ncols=4)
    return _save(fig, path)


def plot_delays(delays: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Figure 3 (right): policy minus scanner identification time (days), one row per policy,
    each bright source a dot, the median marked and written."""
    labels = list(delays)
    fig, (ax,) = new_figure(7.0, 1.2 + 0.55 * max(len(labels), 1))
    rng = np.random.default_rng(0)  # vertical jitter only, for legibility
    any_points = False
    for i, label in enumerate(labels):
        d = np.asarray(delays[label], float)
        y = len(labels) - 1 - i
        if d.size == 0:
            ax.text(0, y, "no delays (no scanner save times or no bright source passed)",
                    va="center", ha="center", fontsize="small", color="grey")
            continue
        any_points = True
        ax.scatter(d, y + rng.uniform(-0.18, 0.18, d.size), s=12, color=f"C{i}", alpha=0.7, lw=0)
        med = float(np.median(d))
        ax.plot([med, med], [y - 0.32, y + 0.32], color="black", lw=2)
        ax.annotate(f"median {med:+.2f} d (n={d.size})", (med, y + 0.34), fontsize="x-small", ha="center",
                    va="bottom")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(labels)), labels[::-1])
    ax.set_ylim(-0.6, len(labels) - 0.2)
    ax.set(xlabel="policy - scanner identification time (days; negative: the policy was earlier)",
           title="identification delay against human scanners")
    if not any_points:
        ax.set_xlim(-1, 1)
    return _save(fig, path)


def plot_reliability(curves: Mapping[str, Mapping[str, np.ndarray]], path: str | Path) -> Path:
    """Reliability diagram: observed frequency against mean score per bin, ``{label: bins}``,
    with the number of alerts written at each point and drawn per bin underneath."""
    fig, (ax, hist) = new_figure(5.6, 6.4, rows=2, height_ratios=[3, 1.2])
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
    offset = 0.0
    width = 1.0 / max(len(next(iter(curves.values()))["count"]), 1) / (len(curves) + 1)
    for i, (label, r) in enumerate(curves.items()):
        count = np.asarray(r["count"])
        used = count > 0
        conf, freq = np.asarray(r["confidence"])[used], np.asarray(r["frequency"])[used]
        ax.plot(conf, freq, marker=MARKERS[i % len(MARKERS)], ls=STYLES[i % len(STYLES)], color=f"C{i}", label=label)
        for x, y, c in zip(conf, freq, count[used]):
            ax.annotate(str(int(c)), (x, y), textcoords="offset points", xytext=(4, -10 - 9 * i),
                        fontsize=7, color=f"C{i}")
        edges = np.asarray(r["edges"])
        hist.bar(edges[:-1] + offset + width / 2, count, width=width, color=f"C{i}", label=label)
        offset += width
    ax.set(xlabel="mean score in bin", ylabel="fraction bright", xlim=(0, 1), ylim=(0, 1.02),
           title="reliability (numbers: alerts per bin)")
    ax.legend(fontsize="x-small", loc="upper left")
    hist.set(xlabel="score bin", ylabel="alerts", xlim=(0, 1), yscale="log")
    return _save(fig, path)


def plot_frontier(curves: Mapping[int, Sequence[Mapping[str, Any]]], chosen: Mapping[str, float] | None,
                  target: float, path: str | Path) -> Path:
    """Policy search on the validation sources: purity against completeness as the threshold
    moves, one curve per N (other cuts as chosen); the chosen policy starred."""
    fig, (ax,) = new_figure(6.4, 4.8)
    for i, (n, rows) in enumerate(curves.items()):
        comp = np.array([r["completeness"] for r in rows], float)
        pur = np.array([np.nan if r["purity"] is None else r["purity"] for r in rows], float)
        ax.plot(comp, pur, marker=MARKERS[i % len(MARKERS)], ls=STYLES[i % len(STYLES)], ms=4,
                color=f"C{i}", label=f"N = {n}")
        for (x, y), thresholds in _runs(rows, comp, pur):
            text = f"{thresholds[0]:.2f}" if len(thresholds) == 1 else f"{thresholds[0]:.2f}–{thresholds[-1]:.2f}"
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(-4, 4 + 9 * i), ha="right",
                        fontsize=7, color=f"C{i}")
    ax.axvline(target, color="grey", ls="--", lw=0.8, label=f"target completeness {target:.2f}")
    if chosen is not None:
        ax.plot([chosen["completeness"]], [chosen["purity"]], "*", color="crimson", ms=15, label="chosen",
                zorder=5)
    ax.set(xlabel="completeness (validation sources)", ylabel="purity",
           title="policy search (labels: thresholds)")
    ax.margins(x=0.06, y=0.15)
    ax.legend(fontsize="small", loc="lower left")
    return _save(fig, path)


def _runs(rows: Sequence[Mapping[str, Any]], comp: np.ndarray,
          pur: np.ndarray) -> list[tuple[tuple[float, float], list[float]]]:
    """Consecutive thresholds that land on the same point, grouped: ``[((x, y), thresholds)]``."""
    runs: list[tuple[tuple[float, float], list[float]]] = []
    for r, x, y in zip(rows, comp, pur):
        if not np.isfinite(y):
            continue
        if runs and runs[-1][0] == (x, y):
            runs[-1][1].append(r["params"]["threshold"])
        else:
            runs.append(((x, y), [r["params"]["threshold"]]))
    return runs
