"""Entry points the CLI calls: the continuous service, one cron-friendly pass, time parsing."""

from __future__ import annotations

import datetime as dt
import logging
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brightscan.autoscan.config import AutoscanConfig, make_policy_from, make_sink
from brightscan.autoscan.service import AutoscanService, load_scorer
from brightscan.autoscan.feeds import Feed, DirectoryFeed, ReplayFeed, parse_feed
from brightscan.autoscan.store import open_store
from brightscan.errors import InputError

__all__ = ["RunReport", "build_service", "parse_time", "run_autoscan", "scan_once"]

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a run or a scan did, read back from the database."""

    alerts: int  # alerts stored in the database (all runs)
    passed: int  # sources that passed the policy (all runs)
    actions_done: int  # actions acknowledged by the sink
    actions_pending: int  # still waiting (retries)
    actions_failed: int  # given up on


def build_service(config: AutoscanConfig, model_dir: str | Path) -> AutoscanService:
    """Open the database, load the model, build the policy and the sink."""
    store = open_store(config.db_url)
    scorer = load_scorer(model_dir, overflow=config.service.overflow)
    return AutoscanService(store, scorer, make_policy_from(config.policy), make_sink(config.sink),
                           config.service)


def _report(service: AutoscanService) -> RunReport:
    import sqlalchemy as sa

    from brightscan.autoscan.store import actions, alerts, sources

    with service.store.engine.connect() as conn:
        count = lambda q: int(conn.execute(q).scalar() or 0)  # noqa: E731
        states = dict(conn.execute(sa.select(actions.c.state, sa.func.count()).group_by(actions.c.state)).all())
        return RunReport(
            alerts=count(sa.select(sa.func.count()).select_from(alerts)),
            passed=count(sa.select(sa.func.count()).select_from(sources)
                         .where(sources.c.policy_state == "passed")),
            actions_done=int(states.get("done", 0)), actions_pending=int(states.get("pending", 0)),
            actions_failed=int(states.get("failed", 0)))


def _stop_on_sigterm() -> None:
    # SIGTERM (systemd stop) ends the loop like Ctrl-C; the current batch's transaction either
    # committed or rolls back, so stopping anywhere is safe.
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def run_autoscan(config: AutoscanConfig, source_spec: str, model_dir: str | Path) -> RunReport:
    """Run the service on ``dir:PATH``, ``replay:PATH`` or ``kafka:TOPIC`` until the source ends
    (replay) or the process is stopped (SIGTERM / Ctrl-C)."""
    source: Feed = parse_feed(source_spec, speedup=config.service.speedup,
                                       poll_interval=config.service.poll_interval_s,
                                       kafka_config=config.kafka)
    service = build_service(config, model_dir)
    _stop_on_sigterm()
    log.info("autoscan started: source %s, policy %s", source_spec, service.policy)
    try:
        service.run(source)
    except KeyboardInterrupt:
        log.warning("stopped; pending actions will be delivered by the next run")
    finally:
        report = _report(service)
        service.store.dispose()
    return report


def scan_once(config: AutoscanConfig, source_spec: str, model_dir: str | Path, *,
              since: float | None = None, until: float | None = None) -> RunReport:
    """One pass: process the new files that arrived in ``[since, until)``, deliver the actions
    (including leftovers of earlier passes), and return. Cron-friendly."""
    kind, _, arg = source_spec.partition(":")
    if kind == "dir" and arg:
        source: Feed = DirectoryFeed(arg, once=True, since=since, until=until)
    elif kind == "replay" and arg:
        source = ReplayFeed(arg, speedup=float("inf"))
    else:
        raise InputError(f"scan reads dir:PATH or replay:PATH, got {source_spec!r}")
    service = build_service(config, model_dir)
    try:
        service.run(source)
        return _report(service)
    finally:
        service.store.dispose()


_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)\s*(s|m|min|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_time(text: str | None, now: float | None = None) -> float | None:
    """Unix time from ``now``, ``-30min`` / ``-2h`` / ``-1d``, a JD (> 2400000) or ISO 8601
    (UTC when no zone is given). ``None`` stays ``None``."""
    if text is None:
        return None
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    if match := _RELATIVE.match(text):
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None and value > 2400000:
        return (value - 2440587.5) * 86400.0  # JD -> unix
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"cannot read time {text!r}: use ISO 8601, a JD, 'now' or '-30min'") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()
