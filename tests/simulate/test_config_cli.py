"""Configuration parsing and the ``brightscan simulate`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightscan.cli.main import app
from brightscan.errors import ConfigError
from brightscan.simulate import CLASSES, ClassMix, SurveyConfig
from brightscan.simulate.survey import assign_classes


def test_class_mix_parse_and_exact_counts() -> None:
    mix = ClassMix.parse("bright_sn=1, dim_sn=1, agn=0, cv=0, varstar=0, bogus=0")
    assert mix.fractions()[:2] == (0.5, 0.5)
    classes = assign_classes(SurveyConfig(n_sources=11, class_mix=mix))
    assert sorted(set(classes.tolist())) == [0, 1] and abs((classes == 0).sum() - (classes == 1).sum()) == 1
    default = assign_classes(SurveyConfig(n_sources=1000))
    assert abs((default == CLASSES.index("bright_sn")).mean() - 0.33) < 0.01


@pytest.mark.parametrize("text", ["quasar=0.2", "agn", "agn=lots", "bright_sn=-1"])
def test_class_mix_rejects_bad_input(text: str) -> None:
    with pytest.raises(ConfigError):
        ClassMix.parse(text).fractions()


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        SurveyConfig(n_sources=0).validate()
    with pytest.raises(ConfigError):
        SurveyConfig(stamp_size=64).validate()


def test_cli_writes_a_survey_and_a_preview(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "-n", "6", "--seed", "1", "--nights", "40", "-j", "1",
                                 "--out", str(tmp_path / "s"), "--preview", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert "alerts of 6 sources" in result.output
    assert (tmp_path / "s" / "labels.csv").exists() and (tmp_path / "p.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["simulate"], "--out"),
    (["simulate", "--out", "x", "--start-date", "03/01/2023"], "YYYY-MM-DD"),
    (["simulate", "--out", "x", "--class-mix", "qso=1"], "class-mix"),
])
def test_cli_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and message in result.output
