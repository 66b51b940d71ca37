"""One learning-curve row from a row folder's stage markers and its evaluation's ``metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brightscan.experiments.stages import StageRunner

__all__ = ["summarise_row", "summarise_model"]

#: Policies summarised per row.
ROW_POLICIES: tuple[str, ...] = ("gt1", "gt3", "bts_prod", "optimised")
#: Source-level keys kept per policy (each with its ``*_ci`` when the evaluation gave one).
POLICY_KEYS: tuple[str, ...] = ("completeness", "purity", "median_delay_days")


def summarise_model(metrics: dict[str, Any]) -> dict[str, Any]:
    """Headline figures of one model's section of ``metrics.json``."""
    alert = metrics["alert"]
    out: dict[str, Any] = {
        "model": f"{metrics['model']['model_id']}/{metrics['model']['model_version']}",
        "auc": alert["auc"], "auc_ci": alert.get("auc_ci"),
        "val_auc": alert.get("val_auc"), "val_auc_ci": alert.get("val_auc_ci"),
        "outcomes_m_lt_18_5": metrics.get("outcomes_m_lt_18_5"),
        "faint_dim_sn": metrics.get("faint_dim_sn"),
        "policies": {},
    }
    for name in ROW_POLICIES:
        pol = metrics["policies"].get(name)
        if pol is None:
            continue
        entry = {k: pol.get(k) for k in POLICY_KEYS}
        entry.update({f"{k}_ci": pol.get(f"{k}_ci") for k in POLICY_KEYS})
        entry.update(n_bright=pol.get("n_bright"), n_passed=pol.get("n_passed"), n_delays=pol.get("n_delays"))
        if name == "optimised":
            entry["validation"] = pol.get("validation")
            entry["params"] = (pol.get("policy") or {}).get("best", {}).get("params")
        out["policies"][name] = entry
    return out


def summarise_row(stages: StageRunner, size: int, preset: str) -> dict[str, Any]:
    """The row of ``size`` and ``preset``: data sizes, training, timings, memory, metrics."""
    sim, built = stages.done("simulate"), stages.done("dataset")
    trained, evaluated = stages.done(f"train-{preset}"), stages.done(f"evaluate-{preset}")
    metrics = json.loads(Path(evaluated["result"]["metrics"]).read_text(encoding="utf-8"))
    markers = {"simulate": sim, "dataset": built, "train": trained, "evaluate": evaluated}
    train = trained["result"]
    row: dict[str, Any] = {
        "size": size, "preset": preset,
        "survey": sim["result"], "splits": built["result"],
        "training": {k: train.get(k) for k in ("best_epoch", "best_val_loss", "best_val_auc",
                                                  "epochs_run", "stopped_early")},
        "seconds": {k: m["seconds"] for k, m in markers.items()},
        "peak_rss_mib": {k: m["peak_rss_mib"] for k, m in markers.items()},
        "n_test_sources": metrics["sources"]["n_selected"],
        "n_val_sources": metrics["sources"]["n_selected_val"],
        "ours": summarise_model(metrics),
        "published": summarise_model(metrics["compare"]) if "compare" in metrics else None,
    }
    # a training continued with more epochs counts the runs it continued (each left a marker)
    row["seconds"]["train"] = round(row["seconds"]["train"] + (train.get("earlier_seconds") or 0.0), 1)
    row["seconds"]["total"] = round(sum(row["seconds"].values()), 1)
    row["training"]["epoch_seconds"] = _epoch_seconds(Path(train["model_dir"]))
    return row


def _epoch_seconds(model_dir: Path) -> list[float]:
    """Wall seconds of each epoch from the trainer's ``metrics.csv`` (all sessions of a resumed run)."""
    import pandas as pd

    path = model_dir / "metrics.csv"
    if not path.exists():
        return []
    return [round(float(v), 1) for v in pd.read_csv(path)["seconds"]]
