"""Print issue 27's rows at 4,000 (or 14,000) sources under gt1, bts_p1, prod_p1, bts_prod and optimised.

Usage: python scripts/issue27_policies_table.py REPORT_DIR [REPORT_DIR ...] [--ceiling DIR ...] [--faint]

Each REPORT_DIR is a ``brightscan evaluate`` output (``metrics.json``); a report made with
``--compare`` adds the compared model's row (the published v1.0.1 in the learning curve). Each
``--ceiling`` DIR is a ``brightscan experiment ceiling`` output. Per row: test alert AUC [95%
interval over objects], then per policy completeness / purity (%) with the purity interval.
With ``--faint``, a last column: the mean score of the test split's dim-SN alerts fainter than
18.5 mag (the issue's headline symptom: ``metrics.json``'s ``faint_dim_sn``; a report made
before ``evaluate`` recorded it is scored again).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from issue27_table import _faint, _policy

POLICIES = ("gt1", "bts_p1", "prod_p1", "bts_prod", "optimised")


def _row(name: str, metrics: dict, faint: float | None = None) -> str:
    lo, hi = metrics["alert"]["auc_ci"]
    cells = [_policy(metrics["policies"][p]) if p in metrics["policies"] else "-" for p in POLICIES]
    if faint is not None:
        cells.append(f"{faint:.3f}")
    return f"| {name} | {metrics['alert']['auc']:.3f} [{lo:.3f}, {hi:.3f}] | " + " | ".join(cells) + " |"


def _name(metrics: dict, fallback: str) -> str:
    model = metrics.get("model") or {}
    return f"{model.get('model_id', fallback)}/{model.get('model_version', '?')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", type=Path)
    parser.add_argument("--ceiling", nargs="*", type=Path, default=[])
    parser.add_argument("--faint", action="store_true", help="add the faint dim-SN mean score")
    args = parser.parse_args()
    extra = ["faint dim-SN mean score"] if args.faint else []
    print("| row | test AUC | " + " | ".join([f"{p}: complete / pure [pure CI]" for p in POLICIES] + extra) + " |")
    print("|---|---|" + "---|" * (len(POLICIES) + len(extra)))
    compared, compared_on = None, None
    for report in args.reports:
        metrics = json.loads((report / "metrics.json").read_text())
        faint = _faint(metrics, Path(metrics["dataset"])) if args.faint else None
        print(_row(f"{_name(metrics, report.name)} ({report})", metrics, faint), flush=True)
        if compared is None and metrics.get("compare"):
            compared, compared_on = metrics["compare"], Path(metrics["dataset"])  # scored on that report's test split
    if compared:
        faint = _faint(compared, compared_on) if args.faint else None
        print(_row(f"{_name(compared, 'compare')} (published, same test alerts)", compared, faint))
    for ceiling in args.ceiling:
        c = json.loads((ceiling / "ceiling.json").read_text())
        faint = c["faint_dim_sn"]["mean_score"] if args.faint else None
        print(_row(f"ceiling: HistGradientBoosting, {len(c['model']['features'])} features ({ceiling})", c, faint))


if __name__ == "__main__":
    main()
