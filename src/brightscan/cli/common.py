"""Helpers shared by the command modules: error mapping, progress bars, logging set-up."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from brightscan.errors import BrightscanError, InputError

console = Console(stderr=True)

#: Exit codes: 0 ok, 1 a run failed (nothing usable came out), 2 usage error (Typer's own).
EXIT_FAILED = 1
EXIT_USAGE = 2


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn our exceptions into a one-line message and a non-zero exit, never a traceback."""
    try:
        yield
    except InputError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except BrightscanError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None


def make_progress(transient: bool = False) -> Progress:
    """A Rich progress bar for long work (writes to stderr, so stdout stays machine-readable)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
