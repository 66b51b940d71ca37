"""``brightscan train`` / ``brightscan tune`` through the CLI, with a TOML config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.train import TrainConfig, dump_toml, load_train_config

runner = CliRunner()


def _flat(text: str) -> str:
    """Rich wraps long messages; compare with single spaces."""
    return " ".join(text.split())


def test_train_then_resume_through_the_cli(synthetic_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(
        '[train]\npreset = "mi_cnn.tiny"\nmax_steps_per_epoch = 3\n\n[recipe]\nlearning_rate = 0.003\n')
    args = ["train", str(synthetic_dataset), "--out", str(tmp_path / "m"), "--config", str(tmp_path / "cfg.toml")]
    result = runner.invoke(app, [*args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(tmp_path / "m"))
    again = runner.invoke(app, [*args, "--epochs", "1"])
    assert again.exit_code == 2 and "--resume" in _flat(again.output)
    resumed = runner.invoke(app, [*args, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert len(json.loads((tmp_path / "m" / "metrics.json").read_text())) == 2
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["provenance"]["training"]["config"]["recipe"]["learning_rate"] == 0.003


def test_bad_config_and_missing_dataset_fail_cleanly(synthetic_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[recipe]\nlearning_rat = 1\n")
    result = runner.invoke(app, ["train", str(synthetic_dataset), "--out", str(tmp_path / "m"),
                                 "--preset", "mi_cnn.tiny", "--config", str(tmp_path / "bad.toml")])
    assert result.exit_code == 1 and "learning_rat" in _flat(result.output)
    result = runner.invoke(app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"),
                                 "--preset", "mi_cnn.tiny"])
    assert result.exit_code == 2 and "does not exist" in _flat(result.output)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train", str(tmp_path / "empty"), "--out", str(tmp_path / "m"),
                                 "--preset", "mi_cnn.tiny"])
    assert result.exit_code == 2 and "not a brightscan dataset" in _flat(result.output)
    result = runner.invoke(app, ["train", str(synthetic_dataset), "--out", str(tmp_path / "m"), "--preset", "nope"])
    assert result.exit_code == 1 and "unknown model preset" in _flat(result.output)


def test_negative_weight_option_wins_over_the_config_and_is_checked(synthetic_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(
        '[train]\npreset = "mi_cnn.tiny"\nmax_steps_per_epoch = 2\n\n[recipe]\nnegative_weight = 2.0\n')
    args = ["train", str(synthetic_dataset), "--config", str(tmp_path / "cfg.toml"), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "m"), "--negative-weight", "4"])
    assert result.exit_code == 0, result.output
    training = json.loads((tmp_path / "m" / "model.json").read_text())["provenance"]["training"]
    assert training["negative_weight"] == 4.0 and training["config"]["recipe"]["negative_weight"] == 4.0
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--negative-weight", "0"])
    assert result.exit_code == 1 and "negative_weight must be a finite positive number" in _flat(result.output)


def test_toml_round_trip() -> None:
    config = TrainConfig(preset="mi_cnn.v1", epochs=5, precision="bf16",
                         recipe={"batch_size": 64, "betas": [0.9, 0.99]},
                         model={"conv_dropouts": [0.1, 0.2], "feature_set": "icml2023"})
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(dump_toml(config))
        assert load_train_config(path) == config
    assert config.model_config().n_features == 14


@pytest.mark.slow
def test_tune_writes_trials_and_a_config_train_accepts(synthetic_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    base = tmp_path / "base.toml"
    base.write_text('[train]\npreset = "mi_cnn.tiny"\nmax_steps_per_epoch = 2\n')
    result = runner.invoke(app, ["tune", str(synthetic_dataset), "--out", str(tmp_path / "tune"), "--trials", "3",
                                 "--epochs", "2", "--config", str(base)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "tune" / "best.json").read_text())
    assert set(summary["best_params"]) >= {"learning_rate", "batch_size", "nmax", "feature_set", "head_dropout"}
    assert len((tmp_path / "tune" / "trials.csv").read_text().strip().splitlines()) == 4
    best = load_train_config(tmp_path / "tune" / "best.toml")
    assert best.recipe["learning_rate"] == pytest.approx(summary["best_params"]["learning_rate"])
    out = runner.invoke(app, ["train", str(synthetic_dataset), "--out", str(tmp_path / "m"),
                              "--config", str(tmp_path / "tune" / "best.toml"), "--epochs", "1"])
    assert out.exit_code == 0, out.output
