"""``brightscan autoscan``: the real-time service, one cron-friendly pass, the night's summary,
the live status page."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import typer

from brightscan.cli.common import JSON_OPTION, QUIET_OPTION, TYPER_SETTINGS, Output, handle_errors

app = typer.Typer(help="Score alerts as they arrive, save and request follow-up exactly once.",
                  **TYPER_SETTINGS)

_CONFIG = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                       help="TOML config (groups, allocation, payload, policy, sink, db).")
_DB = typer.Option(None, "--db", help="Database URL (sqlite:///file.db or postgresql+psycopg://...).")
_POLICY = typer.Option(None, "--policy", help="Policy name (gt1, gt2, bts_prod, ...; parameters from the config) or a policy file such as evaluate's REPORT/policy.json.")
_SINK = typer.Option(None, "--sink", help="Where actions go (default: the config's, else log).")
SinkKind = Literal["skyportal", "webhook", "log"]
OutcomeFormat = Literal["auto", "bts", "tns", "plain"]


def _config(config: Path | None, db: str | None, policy: str | None, sink: str | None,
            speedup: float | None = None) -> Any:
    from brightscan.autoscan.config import load_config

    return load_config(config, db_url=db, policy=policy, sink=sink, speedup=speedup)


def _finish(report: Any, show: Output) -> None:
    """Print the run's report; exit 1 when an action was given up on."""
    show.result(f"alerts stored {report.alerts}, sources passed {report.passed}, actions done "
                f"{report.actions_done}, pending {report.actions_pending}, failed {report.actions_failed}",
                dataclasses.asdict(report))
    if report.actions_failed:
        raise typer.Exit(1)


@app.command("run")
def run(
    feed: str = typer.Option(..., "--feed", "--source", help="Where alerts come from: dir:PATH, replay:PATH or kafka:TOPIC (--source is the older name)."),
    model: Path = typer.Option(..., "--model", "-m", help="Model directory."),
    db: str = _DB,
    policy: str = _POLICY,
    sink: SinkKind = _SINK,
    config: Path = _CONFIG,
    speedup: float = typer.Option(None, "--speedup",
                                  help="Replay speed-up (default 10 or the config's)."),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run continuously (a replay ends with its night); stop with SIGTERM or Ctrl-C."""
    from brightscan.autoscan.write.runner import run_autoscan

    with handle_errors():
        report = run_autoscan(_config(config, db, policy, sink, speedup), feed, model)
    _finish(report, Output(quiet, as_json))


@app.command("scan")
def scan(
    feed: str = typer.Option(..., "--feed", "--source", help="dir:PATH (or replay:PATH: everything at once); --source is the older name."),
    model: Path = typer.Option(..., "--model", "-m", help="Model directory."),
    since: str = typer.Option(None, "--since", help="Files arrived at/after: ISO 8601, JD, 'now', '-30min'."),
    until: str = typer.Option(None, "--until", help="Files arrived before (default: no limit)."),
    db: str = _DB,
    policy: str = _POLICY,
    sink: SinkKind = _SINK,
    config: Path = _CONFIG,
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One pass over new files, then deliver pending actions and exit (for cron)."""
    from brightscan.autoscan.write.runner import parse_time, scan_once

    with handle_errors():
        report = scan_once(_config(config, db, policy, sink), feed, model,
                           since=parse_time(since), until=parse_time(until))
    _finish(report, Output(quiet, as_json))


@app.command("summary")
def summary(
    night: str = typer.Option(..., "--night", help="Night as YYYY-MM-DD or YYYYMMDD (UTC date of the alerts)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (index.html + PNGs)."),
    db: str = _DB,
    config: Path = _CONFIG,
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write the night's page (HTML + PNGs): saved sources with triplets, light curves, score
    histories and actions; near-misses; latency. Reads the database, never writes it."""
    from brightscan.autoscan.pages.night import write_summary

    with handle_errors():
        cfg = _config(config, db, None, None)
        path = write_summary(cfg.db_url, night, out, skyportal_url=_skyportal_url(cfg))
    Output(quiet, as_json).result(f"summary -> {path}", {"page": str(path), "night": night})


def _skyportal_url(cfg: Any) -> str | None:
    """The SkyPortal the objects link to: the sink's, or BRIGHTSCAN_SKYPORTAL_URL."""
    import os

    return cfg.sink.skyportal.url or os.environ.get("BRIGHTSCAN_SKYPORTAL_URL")


@app.command("outcomes")
def outcomes(
    classifications: Path = typer.Option(..., "--classifications", exists=True, dir_okay=False,
                                         help="Later classifications: BTS explorer CSV, TNS public objects CSV or plain CSV."),
    fmt: OutcomeFormat = typer.Option("auto", "--format", help="The file's format (auto: from its header)."),
    since: str = typer.Option(None, "--since", help="Alerts at/after: ISO 8601 date or time (UTC), a JD, '-7d'."),
    until: str = typer.Option(None, "--until", help="Alerts before (default: no limit)."),
    radius: float = typer.Option(2.0, "--radius", min=0.0, max=60.0,
                                 help="Match radius (arcsec) for classifications known only by position."),
    saves: Path = typer.Option(None, "--saves", exists=True, dir_okay=False,
                               help="Human scanners' save times (CSV objectId, save_jd) for the delay."),
    html: Path = typer.Option(None, "--html", file_okay=False, help="Also write the outcomes page (HTML + PNGs) here."),
    model: Path = typer.Option(None, "--model", "-m", help="Model directory whose reference.json each night's "
                               "input drift is measured against (default: the config's [drift] reference)."),
    db: str = _DB,
    config: Path = _CONFIG,
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """How the saves turned out against later classifications: purity, completeness and delay
    per night, per week and for the period (95% intervals), with the false saves and misses.
    Reads the database, never writes it."""
    from brightscan.autoscan.outcomes.run import run_outcomes
    from brightscan.autoscan.outcomes.text import format_report

    with handle_errors():
        cfg = _config(config, db, None, None)
        where = model or cfg.drift.reference
        reference = None
        if where:
            from brightscan.model.reference import read_reference

            reference = read_reference(where)
            if reference is None:
                typer.echo(f"no reference distribution in {where}: drift is not checked", err=True)
        report = run_outcomes(cfg.db_url, classifications, fmt=fmt, since=since, until=until,
                              radius_arcsec=radius, saves=saves, reference=reference, drift_config=cfg.drift)
        data = report.to_dict()
        if html is not None:
            from brightscan.autoscan.pages.outcomes import write_outcomes_page

            data["page"] = str(write_outcomes_page(report, html))
    Output(quiet, as_json).result(format_report(report), data)


@app.command("serve")
def serve(
    db: str = _DB,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; any other than loopback needs a token."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    token_file: Path = typer.Option(None, "--token-file", dir_okay=False,
                                    help="File holding the access token (required off loopback; or env "
                                         "BRIGHTSCAN_SERVE_TOKEN, BRIGHTSCAN_SERVE_TOKEN_FILE, or systemd's "
                                         "$CREDENTIALS_DIRECTORY/serve-token). Never on the command line."),
    refresh: int = typer.Option(10, "--refresh", min=1, help="Seconds between the page's reloads."),
    classifications: Path = typer.Option(None, "--classifications", exists=True, dir_okay=False,
                                         help="Serve the outcomes page (/outcomes) against this classification file."),
    model: Path = typer.Option(None, "--model", "-m", help="Model directory whose reference.json the nights' "
                               "drift is measured against (default: the config's [drift] reference)."),
    config: Path = _CONFIG,
) -> None:
    """Serve a read-only live status page of the autoscan database: tonight's candidates and
    decisions, pending and failed actions, throughput, latency, the last error and the last
    nights' input drift (every page also as JSON), and /metrics for Prometheus. Runs beside
    `autoscan run` on the same database."""
    from brightscan.autoscan.drift import DriftMonitor
    from brightscan.autoscan.pages.status import serve as run_server
    from brightscan.autoscan.secrets import find_token
    from brightscan.model.reference import read_reference

    with handle_errors():
        cfg = _config(config, db, None, None)
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"status page: http://{shown}:{port}/ (JSON: /status.json, Prometheus: /metrics); "
                   "stop with Ctrl-C", err=True)
        token = find_token("BRIGHTSCAN_SERVE_TOKEN", "serve-token", token_file)
        where = model or cfg.drift.reference
        reference = read_reference(where) if where else None
        if reference is None:
            typer.echo(f"no reference distribution{f' in {where}' if where else ''}: drift is not checked", err=True)
        run_server(cfg.db_url, host=host, port=port, token=token, refresh_s=refresh,
                   skyportal_url=_skyportal_url(cfg),
                   classifications=None if classifications is None else str(classifications),
                   drift=DriftMonitor(reference, cfg.drift))


@app.command("grant-readonly")
def grant_readonly(
    db: str = typer.Option(..., "--db", help="PostgreSQL URL of the tables' owner or a superuser."),
    role: str = typer.Option(..., "--role", help="The role the status page logs in as (created if absent)."),
    schema: str = typer.Option("public", "--schema", help="Schema holding the autoscan tables."),
    quiet: bool = QUIET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Make a PostgreSQL role that can only read the autoscan tables, for `autoscan serve` and
    `summary`: SELECT grants only, no ownership, no membership, no CREATE; checked afterwards.
    A new role has no password: set one with psql's \\password ROLE."""
    from brightscan.autoscan.pages.pgrole import grant_readonly as grant

    with handle_errors():
        statements = grant(db, role, schema)
    Output(quiet, as_json).result(f"role {role} can only read: " + "; ".join(statements),
                                  {"role": role, "statements": statements})


@app.command("retry")
def retry(
    action_ids: list[int] = typer.Argument(..., help="Id(s) of failed actions (the summary's 'id' column)."),
    show: bool = typer.Option(False, "--show", help="Only print the actions and their attempts."),
    deliver: bool = typer.Option(False, "--deliver",
                                 help="Deliver the open actions now through the configured sink (beside a "
                                      "running service too: it takes only actions nobody has claimed)."),
    db: str = _DB,
    config: Path = _CONFIG,
) -> None:
    """Show a failed action's attempts and replay it (it is checked against SkyPortal first)."""
    import datetime as dt

    from brightscan.autoscan.write.runner import replay_actions

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
