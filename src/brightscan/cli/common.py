"""Helpers shared by the command modules: error mapping, output modes, progress bars, logging."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from brightscan.errors import BrightscanError, InputError

console = Console(stderr=True, highlight=False)

#: Exit codes: 0 ok, 1 a run failed (nothing usable came out), 2 usage error (Typer's own).
EXIT_FAILED = 1
EXIT_USAGE = 2

#: Typer app settings every group shares: plain help text, so ``[train]`` or ``[onnx]`` in a help
#: string is printed as written instead of being read as Rich markup (and dropped).
TYPER_SETTINGS: dict[str, Any] = {"rich_markup_mode": None, "no_args_is_help": True}

#: Optional modules and the extra that installs them (pip install 'brightscan[EXTRA]').
EXTRAS = {
    "onnx": "onnx", "onnxruntime": "onnx", "onnxscript": "onnx",
    "psycopg": "postgres", "psycopg2": "postgres",
    "confluent_kafka": "kafka", "optuna": "tune",
    "starlette": "web", "uvicorn": "web",
}

QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bars, tables or stage messages on stderr.")
JSON_OPTION = typer.Option(False, "--json", help="Print a machine-readable JSON summary on stdout instead of text.")
OVERFLOW_OPTION = typer.Option(
    "reject", "--overflow",
    help="Cutouts with float32 overflow sentinels: reject them, or zero the channel as production does.")
READ_LIMIT_OPTION = typer.Option(
    None, "--read-limit", metavar="NAME=SIZE",
    help="Raise or lower a reading bound, e.g. max_block_bytes=64MiB or max_cutout_bytes=2MiB (repeatable; "
         "names and defaults: docs/ingest.md, Bounds). Whatever exceeds one is rejected, naming it.")


def read_limits(pairs: list[str] | None) -> Any:
    """The :class:`~brightscan.alerts.limits.ReadLimits` of ``--read-limit NAME=SIZE`` options.

    Raises
    ------
    typer.BadParameter
        For a pair without ``=``, an unknown name or a value that is not a positive size (exit 2).
    """
    from brightscan.alerts.limits import ReadLimits
    from brightscan.errors import ConfigError

    values: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not NAME=SIZE", param_hint="--read-limit")
        values[name.strip()] = value.strip()
    try:
        return ReadLimits.from_mapping(values)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--read-limit") from None


def error_line(message: str) -> None:
    """Print ``error: message`` on one line of stderr, whatever the terminal width or brackets."""
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    console.print(f"[bold red]error:[/] {escape(one_line)}", soft_wrap=True)


def missing_module_message(exc: ImportError) -> str | None:
    """One line naming the extra that provides the missing module, or None if it is not ours."""
    name = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return f"this needs the optional package {name!r}, which is not installed: pip install 'brightscan[{extra}]'"


@contextlib.contextmanager
def handle_errors(cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn our exceptions into a one-line message and a non-zero exit, never a traceback.

    ``cleanup`` runs before exiting on any error (e.g. removing half-written outputs).
    """
    try:
        yield
    except BaseException as exc:
        if cleanup is not None:
            cleanup()
        if not isinstance(exc, (BrightscanError, ImportError, KeyboardInterrupt)):
            raise  # a bug: keep its traceback
        if isinstance(exc, KeyboardInterrupt):
            error_line("interrupted")
            raise typer.Exit(130) from None
        if isinstance(exc, ImportError):
            message = missing_module_message(exc)
            if message is None:
                raise
            error_line(message)
            raise typer.Exit(EXIT_FAILED) from None
        error_line(str(exc))
        raise typer.Exit(EXIT_USAGE if isinstance(exc, InputError) else EXIT_FAILED) from None


class OutputGuard:
    """Remember which of ``paths`` did not exist yet, so a failed command can remove what it made.

    Directories that existed keep everything they held before; only new entries are removed.
    """

    def __init__(self, *paths: Path) -> None:
        self._before: dict[Path, set[str] | None] = {}
        for path in paths:
            path = Path(path)
            if path.is_dir():
                self._before[path] = {p.name for p in path.iterdir()}
            else:
                self._before[path] = None if not path.exists() else set()

    def remove_new(self) -> None:
        """Delete the outputs created since construction."""
        for path, before in self._before.items():
            if before is None:  # did not exist: remove whatever is there now
                _remove(path)
            elif path.is_dir():
                for entry in path.iterdir():
                    if entry.name not in before:
                        _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def make_progress(transient: bool = False, disable: bool = False) -> Progress:
    """A Rich progress bar with count, elapsed time and ETA (stderr, so stdout stays clean)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=disable,
    )


@dataclass
class Output:
    """How a command reports: text (default), nothing but the result (``--quiet``), or JSON."""

    quiet: bool = False  # no progress bars, tables or stage messages
    as_json: bool = False  # the result as one JSON document on stdout

    @property
    def silent(self) -> bool:
        """True when nothing but the result may be printed."""
        return self.quiet or self.as_json

    def progress(self, transient: bool = False) -> Progress:
        """A progress bar, disabled in quiet/JSON mode."""
        return make_progress(transient=transient, disable=self.silent)

    def info(self, renderable: Any) -> None:
        """A message or table for people (stderr); dropped in quiet/JSON mode."""
        if not self.silent:
            console.print(renderable if not isinstance(renderable, str) else escape(renderable), soft_wrap=True)

    def result(self, text: str, data: dict[str, Any]) -> None:
        """The command's result: ``text`` on stdout, or ``data`` as JSON with ``--json``."""
        if self.as_json:
            typer.echo(json.dumps(data, indent=2, default=str))
        else:
            typer.echo(text)


def rejection_table(counts: Iterable[tuple[tuple[str, str], int]]) -> Table:
    """A table of rejections grouped by (stage, reason), largest first."""
    table = Table("stage", "reason", "alerts", title="rejections")
    for (stage, reason), count in counts:
        table.add_row(escape(stage), escape(reason), str(count))
    return table


def counted(items: Iterable[Any], advance: Callable[[int], None]) -> Iterator[Any]:
    """Yield ``items`` unchanged, calling ``advance(1)`` for each (progress bars)."""
    for item in items:
        advance(1)
        yield item


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    console.print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True)


def setup_logging(verbose: bool) -> None:
    """Log to stderr (diagnostics with ``--verbose``), and print warnings as one clean line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # with --verbose, keep Python's full warning (file and line) for debugging
        warnings.showwarning = _show_warning


# Choices shared by several commands (one spelling everywhere; tests check them against the library).
#: ZTF's sets, and Rubin's without a catalogue (``rubin_v1_sg`` needs one: library only).
FeatureSetName = Literal["v1", "icml2023", "rubin_v1"]
OverflowMode = Literal["reject", "production"]
#: What ``dataset build`` stratifies the source split by (:data:`brightscan.dataset.build.STRATIFY_MODES`).
StratifyMode = Literal["class", "label"]
ThinningMode = Literal["btsbot", "latest"]
ClassWeightUnit = Literal["alert", "object"]
Precision = Literal["auto", "fp32", "bf16"]
ScorePrecision = Literal["auto", "fp32", "bf16", "int8"]
Backend = Literal["torch", "onnx"]
