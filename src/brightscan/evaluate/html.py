"""A self-contained HTML report: tables of the metrics and the PNGs embedded as data URIs."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0;flex:1 1 45%}"""

_CAPTIONS = {
    "roc": "ROC curve of the alerts (AUC in the legend).",
    "outcomes": "Outcomes at score 0.5 by PSF magnitude; the shaded region (m < 18.5) is what triggers BTS spectra.",
    "outcomes_compare": "Same for the compared model.",
    "completeness_purity": "Source completeness (circles, solid) and purity (squares, dashed) by peak magnitude, one colour per policy; thin lines: overall.",
    "delay": "Policy minus scanner identification time of bright sources (negative: the policy is earlier).",
    "reliability": "Reliability: fraction of bright alerts against mean score per bin (diagonal = calibrated).",
    "frontier": "Policy search on the validation split: best purity per completeness; star = chosen policy.",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _sections(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = [(f"{metrics['model']['model_id']}/{metrics['model']['model_version']}", metrics)]
    if metrics.get("compare"):
        c = metrics["compare"]
        out.append((f"{c['model']['model_id']}/{c['model']['model_version']} (compare)", c))
    return out


def _policy_label(name: str, m: Mapping[str, Any]) -> str:
    params = m.get("policy", {}).get("params", {})
    if m.get("policy", {}).get("policy") == "PolicySearch":
        params = m.get("policy", {}).get("best", {}).get("params", {})
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if v not in (None, False))
    return f"{name} ({shown})"


def _side_by_side(models: list[tuple[str, Mapping[str, Any]]]) -> str:
    """One row per policy, each metric for both models next to each other."""
    (n1, m1), (n2, m2) = models
    keys = ["completeness", "purity", "median_delay_days"]
    header = ["policy"] + [f"{k} — {n}" for k in keys for n in (n1, n2)]
    p1, p2 = m1["policies"], m2["policies"]
    rows = [[p, *(pols.get(p, {}).get(k) for k in keys for pols in (p1, p2))] for p in p1]
    return _table(header, rows)


def render_html(metrics: Mapping[str, Any], images: Mapping[str, str | Path]) -> str:
    """The report page as a string."""
    models = _sections(metrics)
    alert_keys = ["auc", "accuracy", "precision", "recall", "n_alerts"]
    parts = [f"<h1>brightscan evaluation — split <code>{html.escape(str(metrics['split']))}</code></h1>",
             f"<p>dataset: <code>{html.escape(str(metrics['dataset']))}</code></p>",
             "<h2>Alerts</h2>",
             _table(["model", *alert_keys, "ECE", "temperature"],
                    [[n, *(m["alert"].get(k) for k in alert_keys), m["calibration"].get("ece"),
                      m["calibration"].get("temperature")] for n, m in models])]
    parts.append("<h2>Sources</h2><p>Sources with at least 2 alerts; bright sources peaking fainter than "
                 "18.5 mag excluded. <em>optimised</em> was chosen on the validation split only.</p>")
    pkeys = ["completeness", "purity", "n_sources", "n_passed", "median_delay_days", "n_delays"]
    for name, m in models:
        rows = [[_policy_label(p, v), *(v.get(k) for k in pkeys)] for p, v in m["policies"].items()]
        parts.append(f"<h3>{html.escape(name)}</h3>" + _table(["policy", *pkeys], rows))
    if len(models) == 2:
        parts.append("<h3>Side by side</h3>" + _side_by_side(models))
    search = metrics.get("search") or {}
    if search.get("frontier"):
        rows = [[", ".join(f"{k}={v}" for k, v in r["params"].items() if v is not None), r["completeness"],
                 r["purity"], r["median_delay_days"], r["n_passed"]] for r in search["frontier"]]
        parts.append(f"<h3>Policy search frontier (validation, target completeness "
                     f"{_fmt(search.get('target_completeness'))})</h3>"
                     + _table(["policy", "completeness", "purity", "median_delay_days", "n_passed"], rows))
    parts.append('<h2>Figures</h2><div class="figs">')
    for key, path in images.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f'<figure><img alt="{key}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(_CAPTIONS.get(key, key))}</figcaption></figure>")
    parts.append("</div>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>brightscan evaluation</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def write_html(metrics: Mapping[str, Any], images: Mapping[str, str | Path], path: str | Path) -> Path:
    """Write :func:`render_html` to ``path``."""
    path = Path(path)
    path.write_text(render_html(metrics, images), encoding="utf-8")
    return path
