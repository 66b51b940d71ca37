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

from brightscan.autoscan.build import build_policy, build_sink
from brightscan.autoscan.config import AutoscanConfig
from brightscan.autoscan.write.service import AutoscanService, load_scorer
from brightscan.autoscan.write.feeds import Feed, parse_feed
from brightscan.autoscan.store import open_store
from brightscan.errors import InputError
from brightscan.times import jd_to_unix

__all__ = ["RunReport", "build_service", "parse_time", "replay_actions", "run_autoscan", "scan_once"]

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a run or a scan did, read back from the database."""

    alerts: int  # alerts stored in the database (all runs)
    passed: int  # objects that passed the policy (all runs)
    actions_done: int  # actions acknowledged by the sink
    actions_pending: int  # still waiting (retries; pending or unconfirmed)
    actions_failed: int  # given up on


def build_service(config: AutoscanConfig, model_dir: str | Path) -> AutoscanService:
    """Open the database, load the model, build the policy and the sink."""
    store = open_store(config.db_url)
    scorer = load_scorer(model_dir, overflow=config.service.overflow)
    return AutoscanService(store, scorer, build_policy(config.policy), build_sink(config.sink),
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
            actions_done=int(states.get("done", 0)),
            actions_pending=int(states.get("pending", 0)) + int(states.get("unconfirmed", 0)),
            actions_failed=int(states.get("failed", 0)))


def _stop_on_sigterm() -> Any:
    """SIGTERM (systemd stop) ends the loop like Ctrl-C; the current delivery's transaction either
    committed or rolls back, so stopping anywhere is safe. Returns the handler it replaced."""
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, raise_interrupt)


def run_autoscan(config: AutoscanConfig, feed_spec: str, model_dir: str | Path) -> RunReport:
    """Run the service on ``dir:PATH``, ``replay:PATH`` or ``kafka:TOPIC`` until the feed ends
    (replay) or the process is stopped (SIGTERM / Ctrl-C)."""
    feed: Feed = parse_feed(feed_spec, speedup=config.service.speedup,
                                       poll_interval=config.service.poll_interval_s,
                                       kafka_config=config.kafka)
    service = build_service(config, model_dir)
    previous = _stop_on_sigterm()
    log.info("autoscan started: feed %s, policy %s", feed_spec, service.policy)
    try:
        service.run(feed)
    except KeyboardInterrupt:
        log.warning("stopped; pending actions will be delivered by the next run")
    finally:
        # the caller's own SIGTERM handling comes back (a library caller or a test process)
        signal.signal(signal.SIGTERM, previous)
        report = _report(service)
        service.store.dispose()
    return report


def scan_once(config: AutoscanConfig, feed_spec: str, model_dir: str | Path, *,
              since: float | None = None, until: float | None = None) -> RunReport:
    """One pass: process the new files that arrived in ``[since, until)``, deliver the actions
    (including leftovers of earlier passes), and return. Cron-friendly."""
    feed = parse_feed(feed_spec, once=True, since=since, until=until)
    service = build_service(config, model_dir)
    try:
        service.run(feed)
        return _report(service)
    finally:
        service.store.dispose()


def replay_actions(config: AutoscanConfig, action_ids: list[int], *, show_only: bool = False,
                   deliver: bool = False) -> tuple[list[Any], Any]:
    """Read failed actions and (unless ``show_only``) make them pending again.

    With ``deliver`` the open actions are then delivered once through the configured sink; a
    service running on this database meanwhile is no obstacle: each action is claimed with a
    lease, so this pass takes only what nobody else holds. Returns the actions' histories (as read
    before replaying) and the dispatch stats (None without ``deliver``).
    """
    from brightscan.autoscan.write import outbox

    store = open_store(config.db_url)
    try:
        histories = [outbox.action_history(store, i) for i in action_ids]
        if show_only:
            return histories, None
        for history in histories:  # check them all before changing any
            if history.action["state"] != "failed":
                raise InputError(f"action {history.action['id']} ({history.action['idempotency_key']}) "
                                 f"is {history.action['state']}; only a failed action can be replayed")
        for i in sorted(action_ids):  # in creation order: an object's save before its follow-up
            outbox.replay(store, i, now=time.time())
        stats = None
        if deliver:
            c = config.service
            stats = outbox.dispatch(store, build_sink(config.sink), max_attempts=c.max_attempts,
                                    retry_base_s=c.retry_base_s, retry_max_s=c.retry_max_s, lease_s=c.lease_s)
        return histories, stats
    finally:
        store.dispose()


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
        return jd_to_unix(value)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"cannot read time {text!r}: use ISO 8601, a JD, 'now' or '-30min'") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()
