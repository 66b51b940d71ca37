"""Entry point: builds the Typer app from the per-group modules."""

from __future__ import annotations

import typer

from brightscan import __version__
from brightscan.cli import autoscan as autoscan_cmd
from brightscan.cli import dataset as dataset_cmd
from brightscan.cli import demo as demo_cmd
from brightscan.cli import evaluate as evaluate_cmd
from brightscan.cli import experiment as experiment_cmd
from brightscan.cli import model as model_cmd
from brightscan.cli import preprocess as preprocess_cmd
from brightscan.cli import score as score_cmd
from brightscan.cli import simulate as simulate_cmd
from brightscan.cli import train as train_cmd
from brightscan.cli.common import TYPER_SETTINGS, setup_logging

app = typer.Typer(
    name="brightscan",
    help="Find bright supernovae in ZTF alert streams (BTSbot multi-input CNN).",
    pretty_exceptions_enable=False,
    add_completion=False,
    **TYPER_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"brightscan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log diagnostics to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    setup_logging(verbose)


# One line per command group; each module owns its options and calls one library function.
app.command("preprocess")(preprocess_cmd.preprocess)
app.command("demo")(demo_cmd.demo)
app.add_typer(model_cmd.app, name="model")
app.command("score")(score_cmd.score)
app.command("simulate")(simulate_cmd.simulate)
app.command("evaluate")(evaluate_cmd.evaluate)
app.add_typer(autoscan_cmd.app, name="autoscan")
app.add_typer(dataset_cmd.app, name="dataset")
app.add_typer(experiment_cmd.app, name="experiment")
app.command("train")(train_cmd.train)
app.command("tune")(train_cmd.tune)


def main() -> None:
    app()
