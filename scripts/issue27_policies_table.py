"""Print issue 27's rows at 4,000 (or 14,000) sources under gt1, bts_p1, prod_p1, bts_prod and optimised.

Usage: python scripts/issue27_policies_table.py REPORT_DIR [REPORT_DIR ...] [--ceiling DIR ...]

Each REPORT_DIR is a ``brightscan evaluate`` output (``metrics.json``); a report made with
``--compare`` adds the compared model's row (the published v1.0.1 in the learning curve). Each
``--ceiling`` DIR is a ``brightscan experiment ceiling`` output. Per row: test alert AUC [95%
interval over objects], then per policy completeness / purity (%) with the purity interval.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from issue27_table import _policy

POLICIES = ("gt1", "bts_p1", "prod_p1", "bts_prod", "optimised")


def _row(name: str, metrics: dict) -> str:
    lo, hi = metrics["alert"]["auc_ci"]
    cells = [_policy(metrics["policies"][p]) if p in metrics["policies"] else "-" for p in POLICIES]
    return f"| {name} | {metrics['alert']['auc']:.3f} [{lo:.3f}, {hi:.3f}] | " + " | ".join(cells) + " |"


def _name(metrics: dict, fallback: str) -> str:
    model = metrics.get("model") or {}
    return f"{model.get('model_id', fallback)}/{model.get('model_version', '?')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="*", type=Path)
    parser.add_argument("--ceiling", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    print("| row | test AUC | " + " | ".join(f"{p}: complete / pure [pure CI]" for p in POLICIES) + " |")
    print("|---|---|" + "---|" * len(POLICIES))
    compared = None
    for report in args.reports:
        metrics = json.loads((report / "metrics.json").read_text())
        print(_row(f"{_name(metrics, report.name)} ({report})", metrics), flush=True)
        compared = compared or metrics.get("compare")
    if compared:
        print(_row(f"{_name(compared, 'compare')} (published, same test alerts)", compared))
    for ceiling in args.ceiling:
        c = json.loads((ceiling / "ceiling.json").read_text())
        print(_row(f"ceiling: HistGradientBoosting, {len(c['model']['features'])} features ({ceiling})", c))


if __name__ == "__main__":
    main()
