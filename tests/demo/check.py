"""Check a demo output directory: the report exists and its metrics are in valid ranges.

Run as ``python -m tests.demo.check DIR`` (CI does, after the tiny demo); exits non-zero and
names every problem found.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ALERT_KEYS = ("auc", "accuracy", "precision", "recall")
POLICY_KEYS = ("completeness", "purity")


def check_demo_output(out_dir: str | Path) -> list[str]:
    """Return a list of problems (empty when the demo output is sound)."""
    out = Path(out_dir)
    problems: list[str] = []
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        return [f"{summary_path} is missing"]
    summary = json.loads(summary_path.read_text())
    report = Path(summary.get("report", ""))
    if not report.is_absolute():
        report = out / report
    if not (report / "index.html").is_file():
        problems.append(f"report {report / 'index.html'} is missing")
    if not list(report.glob("*.png")):
        problems.append(f"report {report} holds no figures")
    metrics_path = report / "metrics.json"
    if not metrics_path.is_file():
        return problems + [f"{metrics_path} is missing"]
    problems += check_metrics(json.loads(metrics_path.read_text()))
    autoscan = summary.get("autoscan", {})
    if autoscan.get("alerts_scored", 0) <= 0:
        problems.append("autoscan replay scored no alert")
    outcomes = autoscan.get("outcomes")
    if outcomes is not None:  # the replayed night against the simulated classifications
        if not Path(outcomes.get("page", "")).is_file():
            problems.append(f"outcomes page {outcomes.get('page')!r} is missing")
        for key in ("purity", "completeness"):
            if outcomes.get(key) is not None:
                problems += _in_unit(f"autoscan.outcomes.{key}", outcomes[key])
    return problems


def check_metrics(metrics: dict[str, Any]) -> list[str]:
    """Validate the ``metrics.json`` contract: keys present, values finite and in range."""
    problems: list[str] = []
    alert = metrics.get("alert", {})
    for key in ALERT_KEYS:
        problems += _in_unit(f"alert.{key}", alert.get(key))
    if not isinstance(alert.get("n_alerts"), int) or alert["n_alerts"] <= 0:
        problems.append(f"alert.n_alerts is {alert.get('n_alerts')!r}, expected a positive integer")
    policies = metrics.get("policies", {})
    if "gt1" not in policies:
        problems.append("policies.gt1 is missing")
    for name, values in policies.items():
        for key in POLICY_KEYS:
            problems += _in_unit(f"policies.{name}.{key}", values.get(key))
        if not isinstance(values.get("n_sources"), int) or values["n_sources"] <= 0:
            problems.append(f"policies.{name}.n_sources is {values.get('n_sources')!r}")
        delay = values.get("median_delay_days")
        if delay is not None and not (isinstance(delay, (int, float)) and math.isfinite(delay)):
            problems.append(f"policies.{name}.median_delay_days is {delay!r}")
    problems += _in_unit("calibration.ece", metrics.get("calibration", {}).get("ece"))
    return problems


def _in_unit(name: str, value: Any) -> list[str]:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return [f"{name} is {value!r}, expected a number in [0, 1]"]
    return []


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tests.demo.check DEMO_OUT_DIR", file=sys.stderr)
        return 2
    problems = check_demo_output(args[0])
    for problem in problems:
        print(f"demo check: {problem}", file=sys.stderr)
    if not problems:
        print(f"demo check: {args[0]} is sound")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
