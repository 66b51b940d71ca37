"""Print issue 27's before/after table from a run of scripts/issue27_rows.sh.

Usage: python scripts/issue27_table.py RUN_DIR [ROW ...]

With ROWs (e.g. 0-before, or "ceilings"), only those rows are printed; with none, every row.

Per row: test alert AUC [95% interval over objects], gt1 / bts_prod / optimised completeness and
purity (%) with the purity interval, and the mean score of dim-SN alerts fainter than 18.5 mag
(the issue's headline symptom; from ``metrics.json``, or scored again for older reports).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _pct(x: float) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def _policy(p: dict) -> str:
    lo, hi = p.get("purity_ci") or [float("nan")] * 2
    return f"{_pct(p['completeness'])} / {_pct(p['purity'])} [{_pct(lo)}, {_pct(hi)}]"


def _faint(metrics: dict, dataset: Path) -> float:
    """The mean score of the test split's dim-SN alerts fainter than 18.5 mag: ``metrics.json``'s
    ``faint_dim_sn``, or, for a report made before ``evaluate`` recorded it, the model's scores of
    ``dataset``'s test split again."""
    if "faint_dim_sn" in metrics:
        return metrics["faint_dim_sn"]["mean_score"]
    from brightscan.dataset import open_split
    from brightscan.evaluate.report import faint_dim_sn_mean
    from brightscan.score.scorer import Scorer

    scorer = Scorer(Path(metrics["model"]["dir"]), device="cpu")
    test = open_split(dataset, "test", scorer.loaded.feature_names)
    # the scorer's bounded reader, 4,096 alerts (190 MB of triplets) at a time: the 14,000-source
    # test split holds 2.5 GB of them
    logits = scorer.predict_stored(len(test), lambda rows: (test.reader.read(rows), test.features[rows]),
                                   rows_per_read=4096)
    scores = np.exp(-np.logaddexp(0.0, -logits / scorer.temperature))  # as Scorer.score_arrays
    return faint_dim_sn_mean(test.table, scores)["mean_score"]


def _row(name: str, alert: dict, policies: dict, faint: float) -> str:
    lo, hi = alert["auc_ci"]
    return (f"| {name} | {alert['auc']:.3f} [{lo:.3f}, {hi:.3f}] | {_policy(policies['gt1'])} | "
            f"{_policy(policies['bts_prod'])} | {_policy(policies['optimised'])} | {faint:.3f} |")


def main(run: Path, only: list[str]) -> None:
    print("| row | test AUC | gt1: complete / pure [pure CI] | bts_prod | optimised | faint dim-SN mean score |")
    print("|---|---|---|---|---|---|")
    for report in sorted((run / "reports").glob("*/metrics.json")):
        if only and report.parent.name not in only:
            continue
        ours = json.loads(report.read_text())
        faint = _faint(ours, Path(ours["dataset"]))
        print(_row(report.parent.name, ours["alert"], ours["policies"], faint), flush=True)
    for ceiling in sorted(run.glob("ceiling-*/ceiling.json")) if not only or "ceilings" in only else []:
        c = json.loads(ceiling.read_text())
        print(_row(f"ceiling ({ceiling.parent.name.removeprefix('ceiling-')}: HistGradientBoosting, "
                   f"{len(c['model']['features'])} features)", c["alert"], c["policies"], c["faint_dim_sn"]["mean_score"]))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
