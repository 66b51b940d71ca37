"""Every command's --help renders whole; shared choices match the library; errors are one line."""

from __future__ import annotations

import json
import re
import typing

import click
import pytest
import typer
from typer.testing import CliRunner

from brightscan.cli import common
from brightscan.cli.main import app

runner = CliRunner()


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in group.commands.items():
        out.append((*path, name))
        if hasattr(command, "commands"):
            out += _commands(command, (*path, name))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def test_every_command_is_listed():
    assert {("train",), ("evaluate",), ("autoscan", "serve"), ("autoscan", "summary"), ("score",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_renders_whole(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    # markup never eats words: no "with , ," or "brightscan'" left where "[extra]" was written
    assert not re.search(r"(\s,|,\s*,|\(\s*\)|'brightscan'|\[\s*\])", text), text
    assert "<bool>" not in text  # flags are not typed
    for option in re.findall(r"--[a-z][a-z-]+", text):  # options named in help text exist
        assert option in text
    if command == ("train",):
        assert "[train], [recipe] and [model] tables" in " ".join(text.split())
        assert "--config, -c" in text or "-c, --config" in text or "--config -c" in text


@pytest.mark.parametrize("command, option, values", [
    (("score",), "--precision", "auto|fp32|bf16|int8"),
    (("train",), "--precision", "auto|fp32|bf16"),
    (("score",), "--backend", "torch|onnx"),
    (("preprocess",), "--features", "v1|icml2023|rubin_v1"),
    (("dataset", "build"), "--overflow", "reject|production"),
    (("autoscan", "run"), "--sink", "skyportal|webhook|log"),
    (("demo",), "--size", "tiny|small|paper"),
])
def test_choices_are_listed(command, option, values):
    text = runner.invoke(app, [*command, "--help"], terminal_width=120).output
    assert re.search(rf"{option}\s+<{re.escape(values)}>", text), text


def test_shared_choices_match_the_library():
    from brightscan.autoscan.config import SINK_KINDS
    from brightscan.cli.autoscan import SinkKind
    from brightscan.dataset.build import STRATIFY_MODES
    from brightscan.demo.run import DEMO_SIZES
    from brightscan.score import BACKENDS
    from brightscan.preprocess import FEATURE_SETS, OVERFLOW_MODES
    from brightscan.train.config import PRECISIONS

    assert set(typing.get_args(common.FeatureSetName)) == set(FEATURE_SETS) | {"rubin_v1"}
    assert set(typing.get_args(common.OverflowMode)) == set(OVERFLOW_MODES)
    assert set(typing.get_args(common.StratifyMode)) == set(STRATIFY_MODES)
    assert set(typing.get_args(common.Precision)) == set(PRECISIONS)
    assert set(typing.get_args(common.Backend)) == set(BACKENDS)
    assert set(typing.get_args(SinkKind)) == set(SINK_KINDS)
    assert set(DEMO_SIZES) == {"tiny", "small", "paper"}


def test_bad_choice_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["demo", "--size", "huge", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "'huge' is not one of 'tiny', 'small', 'paper'" in result.output


@pytest.mark.parametrize("module, extra", [
    ("onnx", "onnx"), ("onnxruntime", "onnx"), ("psycopg", "postgres"), ("confluent_kafka", "kafka"),
    ("optuna", "tune"), ("starlette", "web"),
])
def test_missing_optional_module_is_one_line_naming_the_extra(module, extra, capsys):
    with pytest.raises(typer.Exit) as exited, common.handle_errors():
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)
    assert exited.value.exit_code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pip install 'brightscan[{extra}]'" in err


def test_an_unknown_import_error_keeps_its_traceback():
    with pytest.raises(ModuleNotFoundError), common.handle_errors():
        raise ModuleNotFoundError("No module named 'nosuchthing'", name="nosuchthing")


def test_error_brackets_survive_and_stay_on_one_line(capsys):
    common.error_line("install it: pip install 'brightscan[tune]'\n  then retry")
    assert capsys.readouterr().err == "error: install it: pip install 'brightscan[tune]' then retry\n"


@pytest.mark.parametrize("url, message", [
    ("mysql://u@h/db", "'mysql' is not supported"),
    ("postgresql+nosuchdriver://u@h/db", "cannot use database URL"),
])
def test_unsupported_database_urls_are_one_line(tmp_path, url, message):
    result = runner.invoke(app, ["autoscan", "summary", "--night", "2023-06-08", "--out", str(tmp_path / "s"),
                                 "--db", url])
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0


def test_summary_refuses_a_database_that_does_not_exist(tmp_path):
    result = runner.invoke(app, ["autoscan", "summary", "--night", "2023-06-08", "--out", str(tmp_path / "s"),
                                 "--db", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "s").exists()


def test_warnings_print_as_one_clean_line(capsys):
    import warnings

    from brightscan.errors import BrightscanWarning

    common.setup_logging(False)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = common._show_warning
        warnings.warn("no policy reached completeness 0.990", BrightscanWarning, stacklevel=1)
    assert capsys.readouterr().err == "warning: no policy reached completeness 0.990\n"


def test_simulate_json_is_machine_readable(tmp_path):
    result = runner.invoke(app, ["simulate", "--sources", "3", "--nights", "3", "--out", str(tmp_path / "s"),
                                 "--json", "--workers", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n_sources"] == 3 and data["n_alerts"] > 0
