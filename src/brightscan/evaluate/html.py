"""The evaluation report as one self-contained HTML file (figures and triplets inline).

Layout and styling live in the ``report.html`` template of :mod:`brightscan.pages`; this module
turns ``metrics.json`` and the figure paths into what the template shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brightscan.pages import data_uri, metric, render

_CAPTIONS = {
    "roc": "ROC curve of the alerts (AUC in the legend).",
    "outcomes": "The paper's figure 2: outcomes at score 0.5 by the alert's PSF magnitude; the shaded "
                "region (m < 18.5) is what triggers BTS spectra.",
    "outcomes_compare": "Figure 2 for the compared model.",
    "completeness_purity": "The paper's figure 3 (left), every policy: completeness and purity of the "
                           "sources by peak magnitude over the whole range of sources (legend: over all "
                           "sources; dotted line: 18.5 mag); bottom: each policy's false positives per "
                           "bin, over all sources per bin (grey).",
    "delay": "The paper's figure 3 (right), every policy: when the policy identified each bright source "
             "minus when human scanners saved it; bar and label: the median.",
    "compare_sources": "Both models overlaid: completeness and purity by peak magnitude of gt1 and the "
                       "optimised policy.",
    "reliability": "Reliability before and after temperature scaling: fraction of bright alerts against "
                   "the mean score per bin (diagonal: calibrated); numbers and bottom panel: alerts per bin.",
    "frontier": "Policy search on the validation sources: purity against completeness as the threshold "
                "(small labels) moves, one curve per N with the other cuts as chosen; star: the chosen policy.",
}

GALLERY_TITLES = (
    ("earliest_saves", "Earliest saves of the optimised policy (deciding alerts)"),
    ("gt1_false_positives", "False positives of gt1 (deciding alerts)"),
    ("misses", "Bright sources the optimised policy missed (their best alert)"),
    ("top_negatives", "Highest-scoring alerts of sources that are not bright"),
    ("low_positives", "Lowest-scoring alerts of bright sources"),
)

ALERT_KEYS = ("auc", "val_auc", "accuracy", "precision", "recall", "n_alerts")
POLICY_KEYS = ("completeness", "purity", "n_sources", "n_passed", "median_delay_days", "n_delays")


def params_text(params: Mapping[str, Any]) -> str:
    """``n=2, threshold=0.55`` from a policy's parameters (unset cuts left out)."""
    return ", ".join(f"{k}={v}" for k, v in params.items() if v not in (None, False))


def policy_label(name: str, m: Mapping[str, Any]) -> str:
    """A policy name with its parameters (a search shows the policy it chose)."""
    policy = m.get("policy") or {}
    params = policy.get("params", {})
    if policy.get("policy") == "PolicySearch":
        params = policy.get("best", {}).get("params", {})
    return f"{name} ({params_text(params)})"


def _sections(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = [(f"{metrics['model']['model_id']}/{metrics['model']['model_version']}", metrics)]
    if metrics.get("compare"):
        c = metrics["compare"]
        out.append((f"{c['model']['model_id']}/{c['model']['model_version']} (compare)", c))
    return out


def _side_by_side(models: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """One row per policy, each metric for both models next to each other."""
    if len(models) != 2:
        return None
    (n1, m1), (n2, m2) = models
    keys = ("completeness", "purity", "median_delay_days")
    header = [(k, n) for k in keys for n in (n1, n2)]
    rows = [(p, [metric(pols.get(p, {}), k) for k in keys for pols in (m1["policies"], m2["policies"])])
            for p in m1["policies"]]
    return {"header": header, "rows": rows}


def render_html(metrics: Mapping[str, Any], images: Mapping[str, str | Path],
                galleries: Mapping[str, Any] | None = None) -> str:
    """The report page as a string."""
    from markupsafe import Markup, escape

    def figure(key: str) -> Markup:
        return Markup('<figure id="fig-{0}"><img alt="{0}" src="{1}"><figcaption>{2}</figcaption></figure>').format(
            key, data_uri(images[key]), escape(_CAPTIONS.get(key, key)))

    models = _sections(metrics)
    prov = metrics.get("provenance") or {"model_card": {}, "dataset_card": {}, "brightscan_version": "?"}
    return render("report.html", m=metrics, main={"name": models[0][0]}, models=models, prov=prov,
                  card=prov.get("dataset_card") or {"splits": {}}, images=images, figure=figure,
                  alert_keys=ALERT_KEYS, policy_keys=POLICY_KEYS, policy_label=policy_label,
                  params_text=params_text, side_by_side=_side_by_side(models),
                  galleries=galleries or {}, gallery_titles=GALLERY_TITLES)


def write_html(metrics: Mapping[str, Any], images: Mapping[str, str | Path], path: str | Path,
               galleries: Mapping[str, Any] | None = None) -> Path:
    """Write :func:`render_html` to ``path``."""
    path = Path(path)
    path.write_text(render_html(metrics, images, galleries), encoding="utf-8")
    return path
