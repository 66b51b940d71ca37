"""The learning curve drawn and tabulated: one PNG of the headline figures against survey size
(ours and the published model, with the bootstrap intervals), and a Markdown table per row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cost_table", "curve_table", "plot_curve"]

#: Panels of :func:`plot_curve`: (title, policy or None for the alert AUC, metric key).
PANELS: tuple[tuple[str, str | None, str], ...] = (
    ("test alert AUC", None, "auc"),
    ("gt1 completeness", "gt1", "completeness"),
    ("gt1 purity", "gt1", "purity"),
    ("gt1 median delay vs scanners (d)", "gt1", "median_delay_days"),
    ("bts_prod purity", "bts_prod", "purity"),
    ("optimised purity", "optimised", "purity"),
)
#: Line styles of the trained presets, in order of appearance; the published model is dashed grey.
STYLES = ("o-", "^-", "v-", "D-")


def _value(model: dict[str, Any] | None, policy: str | None, key: str) -> tuple[float, float, float]:
    """``(value, lo, hi)`` of one figure of one model's summary (NaN when absent)."""
    if model is None:
        return (np.nan, np.nan, np.nan)
    src = model if policy is None else model["policies"].get(policy, {})
    value, ci = src.get(key), src.get(f"{key}_ci") or [None, None]
    return tuple(np.nan if v is None else float(v) for v in (value, *ci))  # type: ignore[return-value]


def plot_curve(rows: Sequence[dict[str, Any]], path: str | Path, preset: str | Sequence[str] | None = None) -> Path:
    """Headline figures against the number of simulated sources, 95% intervals as error bars.

    ``preset``: one preset, several, or None for every preset in ``rows``; the published model is
    drawn once, from the first preset's rows (it scores the same test alerts in every row of a size).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    presets = (sorted({r["preset"] for r in rows}) if preset is None
               else [preset] if isinstance(preset, str) else list(preset))
    by_preset = {p: sorted((r for r in rows if r["preset"] == p), key=lambda r: r["size"]) for p in presets}
    all_sizes = sorted({r["size"] for p in presets for r in by_preset[p]})
    columns = 3
    fig = Figure(figsize=(4.2 * columns, 3.3 * -(-len(PANELS) // columns)), dpi=100)
    FigureCanvasAgg(fig)
    lines = [(p, "ours", STYLES[i % len(STYLES)], p) for i, p in enumerate(presets)]
    if presets:
        lines.append((presets[0], "published", "s--", "published v1.0.1"))
    for i, (title, policy, key) in enumerate(PANELS):
        ax = fig.add_subplot(-(-len(PANELS) // columns), columns, i + 1)
        for j, (p, who, style, label) in enumerate(lines):
            rows_p = by_preset[p]
            vals = np.array([_value(r[who], policy, key) for r in rows_p]).reshape(-1, 3)
            if not len(rows_p) or np.isnan(vals[:, 0]).all():
                continue
            sizes = np.array([r["size"] for r in rows_p], dtype=float) * (1 + 0.03 * (j - (len(lines) - 1) / 2))
            err = np.abs(np.vstack([vals[:, 0] - vals[:, 1], vals[:, 2] - vals[:, 0]]))
            ax.errorbar(sizes, vals[:, 0], yerr=np.nan_to_num(err), fmt=style, capsize=3, label=label,
                        **({"color": "grey"} if who == "published" else {}))
        if key == "median_delay_days":
            ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(all_sizes, [f"{int(s)}" for s in all_sizes])
        ax.minorticks_off()
        ax.set_xlabel("simulated sources")
        ax.set_title(title, fontsize=10)
        if i == 0:
            ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _fmt(value: float, lo: float, hi: float, digits: int = 3) -> str:
    if np.isnan(value):
        return "n/a"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def curve_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: one line per row and model, figures with their 95% intervals."""
    head = ("| sources | model | test alerts | test AUC | val AUC | m<18.5 TP/FN/FP/TN | faint dim-SN score "
            "| policy | completeness | purity | median delay (d) |")
    lines = [head, "|" + "---|" * 11]
    shown: set[tuple[int, str]] = set()  # the published model once per size, whatever the presets
    for r in sorted(rows, key=lambda r: (r["size"], r["preset"])):
        for who in ("ours", "published"):
            m = r[who]
            if m is None or (who == "published" and (r["size"], m["model"]) in shown):
                continue
            if who == "published":
                shown.add((r["size"], m["model"]))
            o = m.get("outcomes_m_lt_18_5") or {}
            outcomes = "/".join(str(o.get(k, "?")) for k in ("tp", "fn", "fp", "tn"))
            # the mean score of dim SNe's alerts fainter than 18.5 mag (rows made before it was recorded: n/a)
            faint = (m.get("faint_dim_sn") or {}).get("mean_score")
            faint = "n/a" if faint is None or np.isnan(faint) else f"{faint:.3f}"
            for pol in ("gt1", "gt3", "bts_prod", "optimised"):
                if pol not in m["policies"]:
                    continue
                first = pol == "gt1"
                lines.append("| " + " | ".join([
                    str(r["size"]) if first else "", m["model"] if first else "",
                    str(r["splits"]["test"]["alerts"]) if first else "",
                    _fmt(*_value(m, None, "auc")) if first else "",
                    _fmt(*_value(m, None, "val_auc")) if first else "", outcomes if first else "",
                    faint if first else "", pol,
                    _fmt(*_value(m, pol, "completeness")), _fmt(*_value(m, pol, "purity")),
                    _fmt(*_value(m, pol, "median_delay_days"), digits=2),
                ]) + " |")
    return "\n".join(lines) + "\n"


def cost_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of what each row cost: data, training, wall time and peak memory per stage."""
    lines = ["| sources | preset | alerts (train/val/test) | epochs (best) | best val AUC | s per epoch (median) "
             "| wall s: simulate / dataset / train / evaluate / total | peak RSS MiB: simulate / dataset / train / evaluate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["size"], r["preset"])):
        sp, t, sec, mem = r["splits"], r["training"], r["seconds"], r["peak_rss_mib"]
        stages = ("simulate", "dataset", "train", "evaluate")
        lines.append(
            f"| {r['size']} | {r['preset']} | {sp['train']['alerts']}/{sp['val']['alerts']}/{sp['test']['alerts']} "
            f"| {t['epochs_run']} ({t['best_epoch']}) | {t['best_val_auc']:.3f} "
            f"| {np.median(t.get('epoch_seconds') or [np.nan]):.0f} "
            f"| {' / '.join(f'{sec[k]:.0f}' for k in (*stages, 'total'))} "
            f"| {' / '.join(f'{mem[k]:.0f}' for k in stages)} |")
    return "\n".join(lines) + "\n"
