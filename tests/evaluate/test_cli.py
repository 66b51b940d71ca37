"""``brightscan evaluate`` through the Typer app."""

from __future__ import annotations

import json

import pytest
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
    point = metrics["gt1_operating_point"]
    text = " ".join(result.output.split())
    assert f"up to threshold {point['threshold']:.2f}" in text and "train --negative-weight" in text
    assert "would move a retrained model's 0.5 there" in (out / "index.html").read_text()


@pytest.mark.filterwarnings("ignore:no policy reached completeness")  # the random model's search falls back
def test_operating_point_model_gives_under_gt1_what_the_report_gave_at_the_threshold(tmp_path, tiny_model,
                                                                                       tiny_dataset):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(tiny_model), str(tiny_dataset), "--out", str(out),
                                      "--target-completeness", "0.6", "--operating-point"])
    assert result.exit_code == 0, result.output
    point = json.loads((out / "metrics.json").read_text())["gt1_operating_point"]
    moved = out / "operating-point-model"
    assert point["threshold"] is not None and point["written_to"] == str(moved)
    text = " ".join(result.output.split())
    assert f"gt1 at {point['threshold']:.2f} on test: completeness={point['on_test']['completeness']:.4f}" in text
    assert f"written to {moved}" in text
    assert f"the model with its 0.5 moved there is <code>{moved}</code>" in (out / "index.html").read_text()
    # the moved model, evaluated as it is: its gt1 at 0.5 is the first report's gt1 at the threshold
    again = tmp_path / "again"
    result = CliRunner().invoke(app, ["evaluate", str(moved), str(tiny_dataset), "--out", str(again),
                                      "--target-completeness", "0.6"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((again / "metrics.json").read_text())
    gt1 = metrics["policies"]["gt1"]
    assert gt1["completeness"] > 0 and json.loads((out / "metrics.json").read_text())["policies"]["gt1"] != gt1
    for key in ("completeness", "purity", "n_sources", "median_delay_days"):
        assert gt1[key] == point["on_test"][key], key
    assert metrics["gt1_operating_point"]["threshold"] >= 0.5  # gt1 at 0.5 keeps the completeness on val
    assert metrics["model"]["model_version"].endswith(f"+op{point['threshold']:g}")


@pytest.mark.filterwarnings("ignore:no policy reached completeness")  # the random models' search falls back
def test_compared_model_is_calibrated_and_moved_to_its_own_operating_point(tmp_path, tiny_model, tiny_dataset):
    from brightscan.model import read_card

    from .tiny import save_random_model

    other = save_random_model(tmp_path / "other", seed=3)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(tiny_model), str(tiny_dataset), "--out", str(out),
                                      "--compare", str(other), "--calibrate", "--operating-point",
                                      "--target-completeness", "0.6"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    text = " ".join(result.output.split())
    for name, section, source, moved in (
            ("", metrics, tiny_model, "operating-point-model"),
            ("compare ", metrics["compare"], other, "operating-point-compare")):
        point = section["gt1_operating_point"]
        assert point["written_to"] == str(out / moved), name
        card = read_card(out / moved)
        # each model from its own calibrated copy, at its own threshold
        assert card["model_version"] == f"{read_card(source)['model_version']}+calibrated+op{point['threshold']:g}"
        assert card["provenance"]["operating_point"]["model_dir"] == str(out / f"calibrated-{moved.split('-')[-1]}")
        assert card["temperature"] == pytest.approx(section["calibration"]["temperature"])
        assert f"{name}gt1 at {point['threshold']:.2f} on test: completeness=" in text
        assert f"written to {out / moved}" in text
    assert metrics["gt1_operating_point"]["threshold"] != metrics["compare"]["gt1_operating_point"]["threshold"]


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


def test_evaluate_says_what_it_writes_and_autoscan_takes_the_chosen_policy(tmp_path, tiny_model, tiny_dataset):
    import shutil

    from brightscan.autoscan.build import build_policy
    from brightscan.autoscan.config import load_config
    from brightscan.policy import policy_from_dict

    model = shutil.copytree(tiny_model, tmp_path / "model-read")
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(model), str(tiny_dataset), "--out", str(out),
                                      "--target-completeness", "0.01", "--calibrate"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "calibration: temperature 1.0000 ->" in text and f"written to {out / 'calibrated-model'}" in text
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before  # the model read is never changed
    assert f"autoscan: --policy {out / 'policy.json'}" in text
    stored = json.loads((out / "policy.json").read_text())
    assert stored == json.loads((out / "metrics.json").read_text())["policies"]["optimised"]["policy"]
    policy = build_policy(load_config(None, policy=str(out / "policy.json")).policy)
    assert policy.to_dict() == policy_from_dict(stored).to_dict() and policy.best_ is not None
