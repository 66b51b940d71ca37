"""``brightscan evaluate`` through the Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from brightscan.cli.main import app


def test_evaluate_command_writes_report(tmp_path, tiny_model, tiny_dataset):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(tiny_model), str(tiny_dataset), "--out", str(out),
                                      "--target-completeness", "0.01"])
    assert result.exit_code == 0, result.output
    assert "gt1: completeness=" in result.output and "optimised:" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and (out / "index.html").is_file()


def test_evaluate_command_usage_errors(tmp_path, tiny_model):
    result = CliRunner().invoke(app, ["evaluate", str(tiny_model), str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "does not exist" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["evaluate", str(tiny_model), str(tmp_path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "not a brightscan dataset" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()  # a failed command leaves nothing behind
    result = CliRunner().invoke(app, ["evaluate", str(tiny_model), str(tmp_path), "--split", "val",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "val" in result.output
