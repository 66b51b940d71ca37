"""The realism figure: how a model that never saw the simulator scores its alerts.

The published BTSbot v1.0.1 (imported with ``brightscan model import-keras``) was trained on real
BTS alerts only. Its ROC AUC on simulated bright-SN alerts against all other simulated alerts
measures how much the simulated packets carry the cues it learned from real data.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def read_labels(sim_dir: str | Path) -> dict[str, dict[str, str]]:
    """``labels.csv`` of a simulation as objectId -> row."""
    with open(Path(sim_dir) / "labels.csv", newline="") as fh:
        return {row["objectId"]: row for row in csv.DictReader(fh)}


def realism_report(sim_dir: str | Path, model_dir: str | Path, *, batch_size: int = 64) -> dict[str, Any]:
    """Score every alert of a simulation with a model and summarise per class.

    Parameters
    ----------
    sim_dir : path
        Output folder of :func:`~brightscan.simulate.survey.simulate_survey`.
    model_dir : path
        A brightscan model directory (e.g. the imported published v1.0.1).
    batch_size : int
        Alerts per model call.

    Returns
    -------
    dict
        ``auc`` (bright-SN alerts vs the rest), ``auc_alerts_brighter_than_18.5`` (the same on
        alerts with ``magpsf < 18.5``, where the paper reports excellent performance), ``gt1``
        (source-level completeness and purity of the paper's policy), ``n_alerts``,
        ``n_rejected``, ``model``, and ``by_group``: per group (bright SN, dim SN, AGN, CV, ...)
        the count, mean score and the fraction scored >= 0.5.
    """
    from brightscan.metrics import roc_auc
    from brightscan.score.scorer import Scorer

    scorer = Scorer(model_dir, batch_size=batch_size)
    results = scorer.score_files([Path(sim_dir) / "alerts"])
    labels = read_labels(sim_dir)
    y, groups = [], []
    for row in results.rows:
        lab = labels[row["objectId"]]
        y.append(int(lab["label"]))
        groups.append(_group(lab["class"], int(lab["label"])))
    scores = results.score
    bright = np.array([row["magpsf"] < 18.5 for row in results.rows])
    y_bright = [v for v, b in zip(y, bright) if b]
    by_group: dict[str, dict[str, float]] = {}
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    for g, idx in sorted(members.items()):
        s = scores[idx]
        by_group[g] = {"n": len(idx), "mean_score": float(np.mean(s)), "frac_ge_0.5": float(np.mean(s >= 0.5))}
    return {
        "model": f"{scorer.model_id} {scorer.model_version}",
        "auc": float(roc_auc(y, scores)) if 0 < sum(y) < len(y) else float("nan"),
        "auc_alerts_brighter_than_18.5": (float(roc_auc(y_bright, scores[bright]))
                                          if 0 < sum(y_bright) < len(y_bright) else float("nan")),
        "gt1": _gt1(results.rows, scores, labels),
        "n_alerts": len(y),
        "n_rejected": len(results.rejections),
        "by_group": by_group,
    }


def _gt1(rows: list[dict[str, Any]], scores: np.ndarray, labels: dict[str, dict[str, str]]) -> dict[str, float]:
    """Source-level completeness and purity of the paper's ``gt1`` policy (one alert >= 0.5)."""
    flagged: dict[str, bool] = defaultdict(bool)
    for row, score in zip(rows, scores):
        flagged[row["objectId"]] |= bool(score >= 0.5)
    positives = {o for o in flagged if labels[o]["label"] == "1"}
    chosen = {o for o, f in flagged.items() if f}
    return {"completeness": len(chosen & positives) / max(len(positives), 1),
            "purity": len(chosen & positives) / max(len(chosen), 1), "n_sources": len(flagged)}


def _group(cls: str, label: int) -> str:
    if cls.startswith("SN"):
        return "bright SN" if label else "dim SN"
    return cls
