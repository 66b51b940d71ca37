"""The demo checker catches missing reports and out-of-range metrics."""

from __future__ import annotations

import json
from pathlib import Path

from tests.demo.check import check_demo_output, check_metrics, main


def _metrics() -> dict:
    policy = {"completeness": 0.95, "purity": 0.9, "n_sources": 40, "median_delay_days": -0.3}
    return {
        "alert": {"auc": 0.93, "accuracy": 0.88, "precision": 0.8, "recall": 0.9, "n_alerts": 500},
        "policies": {"gt1": policy, "optimised": dict(policy, median_delay_days=None)},
        "calibration": {"ece": 0.04},
    }


def _write_demo(tmp_path: Path, metrics: dict) -> Path:
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps(metrics))
    (report / "index.html").write_text("<html></html>")
    (report / "roc.png").write_bytes(b"\x89PNG")
    (tmp_path / "summary.json").write_text(json.dumps({"report": "report", "autoscan": {"alerts_scored": 12}}))
    return tmp_path


def test_sound_metrics_pass() -> None:
    assert check_metrics(_metrics()) == []


def test_out_of_range_and_missing_values_are_named() -> None:
    bad = _metrics()
    bad["alert"]["auc"] = 1.7
    bad["policies"]["gt1"]["purity"] = float("nan")
    del bad["calibration"]["ece"]
    problems = check_metrics(bad)
    assert any("alert.auc" in p for p in problems)
    assert any("policies.gt1.purity" in p for p in problems)
    assert any("calibration.ece" in p for p in problems)


def test_missing_gt1_is_a_problem() -> None:
    bad = _metrics()
    del bad["policies"]["gt1"]
    assert any("gt1" in p for p in check_metrics(bad))


def test_demo_directory_checked_end_to_end(tmp_path: Path, capsys) -> None:
    out = _write_demo(tmp_path, _metrics())
    assert check_demo_output(out) == []
    assert main([str(out)]) == 0
    (out / "report" / "index.html").unlink()
    assert main([str(out)]) == 1
    assert "index.html" in capsys.readouterr().err


def test_missing_summary(tmp_path: Path) -> None:
    assert check_demo_output(tmp_path) and main([]) == 2
