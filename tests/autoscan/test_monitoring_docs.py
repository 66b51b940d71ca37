"""The Prometheus alerting rules and the Grafana dashboard in docs/ parse, and every brightscan
metric they use is one that ``/metrics`` exports (names taken from a real scrape's output)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("prometheus_client", reason="/metrics needs the web extra")

DOCS = Path(__file__).resolve().parents[2] / "docs"
_METRIC = re.compile(r"\bbrightscan_[a-z_]+\b")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> set[str]:
    """Sample names of a scrape of an empty, migrated database (every family is always present)."""
    from prometheus_client.parser import text_string_to_metric_families

    from brightscan.autoscan.pages.metrics import render_metrics
    from brightscan.autoscan.store import open_store

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('m') / 'a.db'}")
    text = render_metrics(store)[0].decode()
    store.dispose()
    names = {f.name for f in text_string_to_metric_families(text)}
    return names | {f"{n}_total" for n in names} | {f"{n}_{s}" for n in names for s in ("bucket", "sum", "count")}


def _rules() -> list[dict]:
    data = yaml.safe_load((DOCS / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_alert_rules_parse_and_use_exported_metrics(exported):
    rules = _rules()
    assert {r["alert"] for r in rules} >= {"BrightscanNoAlertDuringNight", "BrightscanActionsFailed",
                                           "BrightscanSkyPortalRateLimited", "BrightscanDriftFlagged"}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        used = set(_METRIC.findall(rule["expr"]))
        assert used <= exported, (rule["alert"], used - exported)


def test_grafana_dashboard_uses_exported_metrics(exported):
    dashboard = json.loads((DOCS / "grafana" / "brightscan.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for expr in exprs:
        assert set(_METRIC.findall(expr)) <= exported, expr
    used = {m for e in exprs for m in _METRIC.findall(e)}
    assert {"brightscan_drift_psi", "brightscan_sink_answers_total",
            "brightscan_action_latency_seconds_bucket"} <= used


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
def test_promtool_accepts_the_rules():
    subprocess.run(["promtool", "check", "rules", str(DOCS / "prometheus" / "alerts.yml")], check=True)
