"""``brightscan autoscan``: the real-time service, one cron-friendly pass, the night's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from brightscan.cli.common import handle_errors

app = typer.Typer(help="Score alerts as they arrive, save and request follow-up exactly once.",
                  no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", help="TOML config (groups, allocation, payload, policy, sink, db).")
_DB = typer.Option(None, "--db", help="Database URL (sqlite:///file.db or postgresql+psycopg://...).")
_POLICY = typer.Option(None, "--policy", help="Policy name (gt1, gt2, bts_prod, ...); parameters from the config.")
_SINK = typer.Option(None, "--sink", help="skyportal, webhook or log.")


def _config(config: Path | None, db: str | None, policy: str | None, sink: str | None,
            speedup: float | None = None) -> Any:
    from brightscan.autoscan.config import load_config

    return load_config(config, db_url=db, policy=policy, sink=sink, speedup=speedup)


def _finish(report) -> None:
    """Print the run's report; exit 1 when an action was given up on."""
    _print(report)
    if report.actions_failed:
        raise typer.Exit(1)


def _print(report: Any) -> None:
    typer.echo(f"alerts stored {report.alerts}, sources passed {report.passed}, actions done "
               f"{report.actions_done}, pending {report.actions_pending}, failed {report.actions_failed}")


@app.command("run")
def run(
    source: str = typer.Option(..., "--source", help="dir:PATH, replay:PATH or kafka:TOPIC."),
    model: Path = typer.Option(..., "--model", help="Model directory."),
    db: str = _DB,
    policy: str = _POLICY,
    sink: str = _SINK,
    config: Path = _CONFIG,
    speedup: float = typer.Option(None, "--speedup", help="Replay speed-up (default 10 or the config's)."),
) -> None:
    """Run continuously (a replay ends with its night); stop with SIGTERM or Ctrl-C."""
    from brightscan.autoscan.runner import run_autoscan

    with handle_errors():
        report = run_autoscan(_config(config, db, policy, sink, speedup), source, model)
    _finish(report)


@app.command("scan")
def scan(
    source: str = typer.Option(..., "--source", help="dir:PATH (or replay:PATH: everything at once)."),
    model: Path = typer.Option(..., "--model", help="Model directory."),
    since: str = typer.Option(None, "--since", help="Files arrived at/after: ISO 8601, JD, 'now', '-30min'."),
    until: str = typer.Option(None, "--until", help="Files arrived before (default: no limit)."),
    db: str = _DB,
    policy: str = _POLICY,
    sink: str = _SINK,
    config: Path = _CONFIG,
) -> None:
    """One pass over new files, then deliver pending actions and exit (for cron)."""
    from brightscan.autoscan.runner import parse_time, scan_once

    with handle_errors():
        report = scan_once(_config(config, db, policy, sink), source, model,
                           since=parse_time(since), until=parse_time(until))
    _finish(report)


@app.command("summary")
def summary(
    night: str = typer.Option(..., "--night", help="Night as YYYY-MM-DD or YYYYMMDD (UTC date of the alerts)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (index.html + PNGs)."),
    db: str = _DB,
    config: Path = _CONFIG,
) -> None:
    """Write the night's summary (HTML + PNGs): sources, triplets, score histories, actions, latency."""
    from brightscan.autoscan.summary import write_summary

    with handle_errors():
        path = write_summary(_config(config, db, None, None).db_url, night, out)
    typer.echo(f"summary -> {path}")


@app.command("retry")
def retry(
    action_ids: list[int] = typer.Argument(..., help="Id(s) of failed actions (the summary's 'id' column)."),
    show: bool = typer.Option(False, "--show", help="Only print the actions and their attempts."),
    deliver: bool = typer.Option(False, "--deliver",
                                 help="Deliver now through the configured sink (only when no service runs)."),
    db: str = _DB,
    config: Path = _CONFIG,
) -> None:
    """Show a failed action's attempts and replay it (it is checked against SkyPortal first)."""
    import datetime as dt

    from brightscan.autoscan.runner import replay_actions

    with handle_errors():
        histories, stats = replay_actions(_config(config, db, None, None), action_ids, show_only=show,
                                          deliver=deliver)
    for history in histories:
        a = history.action
        typer.echo(f"action {a['id']} {a['idempotency_key']}: {a['state']}, {a['attempts']} attempt(s)")
        for t in history.attempts:
            when = dt.datetime.fromtimestamp(t["finished_at"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"  #{t['attempt']} {when} UTC {t['outcome']}: {t['detail']}")
    if show:
        return
    typer.echo(f"replayed {len(histories)} action(s): pending again"
               + ("" if deliver else "; a running `brightscan autoscan run` delivers them"))
    if stats is not None:
        typer.echo(f"delivered: done {stats.done}, to retry {stats.retry}, failed {stats.failed}")
        if stats.failed:
            raise typer.Exit(1)
